#!/usr/bin/env python3
"""
SPEC 6 "Shared by processes" on a real network filesystem: one store on GlusterFS, seen
through two FUSE clients of one single-node volume (as two machines would see it), with
an hfmount daemon on each. Two volumes are made: "strict" with the settings README "The
store" asks of a shared store (performance caches off, FUSE attribute/entry timeouts 0)
and "cached" with GlusterFS's default client caching, where a file renamed into place on
one client can read empty or stale on the other for about a second.

Proved: one cold segment read through both mounts at once is byte-identical on both and
equals the ffmpeg CLI's pixels, with each image encoded about once between the daemons;
a daemon killed with -9 mid-extraction is taken over by the other; disjoint windows of
one video are decoded at once; and with default caching no partial or wrong frame is
ever served, frames being read over and over on one mount while the other writes them.

glusterd, its brick processes and the clients are started here with their state in the
test's temp dir and stopped by pid, even on failure. glusterd listens on its fixed port
24007 (its bricks ask it there), so runs of this file on one machine take turns.
"""

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

VOLUMES = ("strict", "cached")
# What a shared store needs of GlusterFS (README "The store"): no client-side caching of
# data or metadata, so that what one client renamed into place is what the other reads.
STRICT_OPTIONS = (("performance.quick-read", "off"), ("performance.io-cache", "off"),
                  ("performance.read-ahead", "off"), ("performance.write-behind", "off"),
                  ("performance.stat-prefetch", "off"), ("performance.open-behind", "off"),
                  ("performance.readdir-ahead", "off"), ("performance.nl-cache", "off"))
STRICT_CLIENT = ("--attribute-timeout=0", "--entry-timeout=0", "--negative-timeout=0")
RUNS = 20  # sources per repeated case


pid_alive = h.pid_alive


def stop_pid(pid, timeout=10):
    """SIGTERM, then SIGKILL after timeout: the process is gone when this returns."""
    if not pid or not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.05)


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0")]
    except OSError:
        return []


class Gluster:
    """glusterd with its working and run directories in a temp dir; one volume per name
    in VOLUMES on a brick there, each mounted by two FUSE clients (mnt[vol][0..1])."""

    def __enter__(self):
        for tool in ("glusterd", "gluster", "glusterfs"):
            if not shutil.which(tool):
                raise AssertionError("%s is not installed: tools/setup.sh --test installs "
                                     "glusterfs-server and glusterfs-client" % tool)
        self.tmp = tempfile.mkdtemp(prefix="hfit-gluster-")
        # glusterd's port is fixed: one run of this file at a time on this machine
        self.turn = open("/tmp/hfmount-test-gluster.lock", "w")
        fcntl.flock(self.turn, fcntl.LOCK_EX)
        self.host = socket.gethostname()  # the CLI refuses localhost as a brick's host
        self.glusterd_pid = None
        self.client_pids = []
        self.brick_pids = []
        self.mnt = {}
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def cli(self, *args, check=True):
        cmd = ["gluster", "--mode=script", "--glusterd-sock=" + self.path("run", "gd.sock"),
               "--log-file=" + self.path("log", "cli.log")] + list(args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError("%s: exit %d: %s\nglusterd log:\n%s" % (
                " ".join(cmd), p.returncode, p.stdout.decode(errors="replace"),
                self._tail("glusterd.log")))
        return p

    def _tail(self, name):
        try:
            with open(self.path("log", name), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def _start(self):
        for d in ("wd", "run", "log"):
            os.makedirs(self.path(d))
        if subprocess.run(["ss", "-ltn", "sport = :24007"], stdout=subprocess.PIPE
                          ).stdout.count(b"\n") > 1:
            raise AssertionError("port 24007 is taken (a glusterd of this machine's?): "
                                 "this test runs its own glusterd there")
        subprocess.run(["glusterd", "-p", self.path("glusterd.pid"),
                        "--log-file=" + self.path("log", "glusterd.log"),
                        "--xlator-option", "management.working-directory=" + self.path("wd"),
                        "--xlator-option", "management.run-directory=" + self.path("run"),
                        "--xlator-option",
                        "management.glusterd-sockfile=" + self.path("run", "gd.sock")],
                       check=True, timeout=60)
        deadline = time.monotonic() + 30
        while True:  # it daemonizes: its pid file, then its CLI socket
            self.glusterd_pid = self.glusterd_pid or read_pid(self.path("glusterd.pid"))
            if self.glusterd_pid and self.cli("volume", "list", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError("glusterd did not answer within 30 s:\n"
                                     + self._tail("glusterd.log"))
            time.sleep(0.1)
        for vol in VOLUMES:
            brick = self.path("brick-" + vol)
            os.makedirs(brick)
            self.cli("volume", "create", vol, "%s:%s" % (self.host, brick), "force")
            if vol == "strict":
                for k, v in STRICT_OPTIONS:
                    self.cli("volume", "set", vol, k, v)
            self.cli("volume", "start", vol)
            self._find_bricks()
            self.mnt[vol] = []
            for c in range(2):
                mnt = self.path("%s-client%d" % (vol, c))
                os.makedirs(mnt)
                pidfile = self.path("%s-client%d.pid" % (vol, c))
                subprocess.run(["glusterfs", "--volfile-server=" + self.host,
                                "--volfile-id=" + vol, "-p", pidfile,
                                "--log-file=" + self.path("log", "%s-client%d.log" % (vol, c))]
                               + list(STRICT_CLIENT if vol == "strict" else ()) + [mnt],
                               check=True, timeout=60)
                deadline = time.monotonic() + 30
                while not os.path.ismount(mnt) or not read_pid(pidfile):
                    check(time.monotonic() < deadline, "%s not mounted within 30 s" % mnt)
                    time.sleep(0.05)
                self.client_pids.append((read_pid(pidfile), mnt))
                self.mnt[vol].append(mnt)
            # the brick answers through both clients
            with open(os.path.join(self.mnt[vol][0], "hello"), "w") as f:
                f.write(vol)
            deadline = time.monotonic() + 10
            while not os.path.exists(os.path.join(self.mnt[vol][1], "hello")):
                check(time.monotonic() < deadline, "%s: a file made through one client is "
                      "not seen through the other" % vol)
                time.sleep(0.1)

    def _find_bricks(self):
        for base, _, files in os.walk(self.path("run", "vols")):
            for n in files:
                pid = read_pid(os.path.join(base, n)) if n.endswith(".pid") else None
                if pid and pid not in [p for p, _ in self.brick_pids]:
                    self.brick_pids.append((pid, cmdline(pid)))

    def __exit__(self, exc_type, exc, tb):
        # clients first (nothing may still use the volumes), then volumes, bricks, glusterd
        for pid, mnt in self.client_pids:
            subprocess.run(["umount", mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if os.path.ismount(mnt):
                subprocess.run(["umount", "-l", mnt], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            stop_pid(pid)
        if self.glusterd_pid and pid_alive(self.glusterd_pid):
            self._find_bricks()
            for vol in self.mnt:
                self.cli("volume", "stop", vol, "force", check=False)
                self.cli("volume", "delete", vol, check=False)
        for pid, argv in self.brick_pids:
            stop_pid(pid)
            # what glusterd made for them outside our temp dir: their log and socket
            for opt in ("-l", "-S"):
                made = argv[argv.index(opt) + 1] if opt in argv[:-1] else ""
                if made.startswith(("/var/log/glusterfs/", "/var/run/gluster/")):
                    try:
                        os.unlink(made)
                    except OSError:
                        pass
        stop_pid(self.glusterd_pid)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.turn.close()
        return False


G = None  # the Gluster of this run (main)


def make_sources(prefix, fixture, n):
    """n copies of a fixture in a local source directory: n sources (identity is the path)."""
    d = os.path.join(G.tmp, "src-" + prefix)
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        dst = os.path.join(d, "%s%02d.mp4" % (prefix, i))
        if not os.path.exists(dst):
            shutil.copyfile(h.fixture(fixture), dst)
    return d


def store_on(vol, client):
    return os.path.join(G.mnt[vol][client], "store")


def encoded(m):
    return m.stats()["images_encoded"]


in_threads = h.in_threads


class logs_on_failure:
    """Prints the daemons' logs when the block fails (Mount removes them on the way out)."""

    def __init__(self, *mounts):
        self.mounts = mounts

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            for m in self.mounts:
                print("--- log of the daemon on %s:\n%s" % (m.store, m.log_text()))
        return False


def same_bytes(seg, xs, ys, what):
    check(len(xs) == len(ys), "%s: %d frames on one mount, %d on the other" % (seg, len(xs),
                                                                               len(ys)))
    for k, (x, y) in enumerate(zip(xs, ys)):
        check(x == y, "%s/frame_%05d: %d bytes %s, %d bytes on the other mount"
              % (seg, k + 1, len(x), what, len(y)))


def image_complete(blob, ext):
    if ext == "png":
        return blob[:8] == h.PNG_SIG and blob[-12:] == b"\0\0\0\0IEND\xaeB`\x82"
    return blob[:3] == b"\xff\xd8\xff" and blob[-2:] == b"\xff\xd9"


# (a) over RUNS sources: at most this many images encoded twice between the daemons in all
ALLOWANCE = 2


@test
def a_cold_segment_through_both_mounts_at_once():
    name, S, D, F = "cfr30.mp4", "1", "1", "30"
    src = make_sources("a", name, RUNS)
    ref = h.ref_fps(h.fixture(name), S, D, F)
    idx = h.model_slots(h.probe_frames(h.fixture(name)), S, D, F)
    distinct = len(set(idx))
    encs = []
    with h.Mount(store=store_on("strict", 0), source_root=src) as a, \
            h.Mount(store=store_on("strict", 1), source_root=src) as b, logs_on_failure(a, b):
        for i in range(RUNS):
            seg = h.seg_name("a%02d.mp4" % i, S, D, F)
            ea, eb = encoded(a), encoded(b)
            os.listdir(a.path(seg))  # indexed on both: the frames are asked for at once
            os.listdir(b.path(seg))
            xa, xb = in_threads((a.read_segment, seg), (b.read_segment, seg))
            same_bytes(seg, xa, xb, "through one client")
            h.assert_frames_equal(h.decode_images(xa), ref, seg + " vs the ffmpeg CLI")
            encs.append(encoded(a) - ea + encoded(b) - eb)
    print("  %d sources, %d distinct frames each: images encoded between the two daemons %s "
          "(total %d for %d)" % (RUNS, distinct, encs, sum(encs), RUNS * distinct))
    check(sum(encs) <= RUNS * distinct + ALLOWANCE,
          "%d images encoded for %d distinct frames (allowance %d)"
          % (sum(encs), RUNS * distinct, ALLOWANCE))


def progress(m, seg, n, marks, stop):
    """Polls seg's .hfinfo on m: marks gets (first time frames_done > 0, time it reached n)."""
    first = None
    while not stop:
        done = m.info(seg)["frames_done"]
        now = time.monotonic()
        if done > 0 and first is None:
            first = now
        if done >= n:
            marks.extend([first, now])
            return
        time.sleep(0.02)


@test
def b_a_daemon_killed_mid_extraction_is_taken_over():
    name, S, D, F = "long3.mp4", "20", "10", "30"
    src = make_sources("b", name, 1)
    seg = h.seg_name("b00.mp4", S, D, F)
    ref = h.ref_fps(h.fixture(name), S, D, F)
    n = len(ref)
    a = h.Mount(store=store_on("strict", 0), source_root=src).__enter__()
    try:
        with h.Mount(store=store_on("strict", 1), source_root=src) as b, logs_on_failure(a, b):
            os.listdir(a.path(seg))
            os.listdir(b.path(seg))
            with open(a.path(seg, "frame_00001.png"), "rb") as f:
                f.read()  # a's extraction of the whole segment starts
            reader = threading.Thread(target=lambda: out.append(b.read_segment(seg)))
            out = []
            reader.start()  # b waits for a's lease, adopting a's images as they land
            deadline = time.monotonic() + 60
            while a.info(seg)["frames_done"] < n // 10:
                check(time.monotonic() < deadline, "a did not extract in 60 s")
                time.sleep(0.01)
            done_a, enc_a, dead = a.info(seg)["frames_done"], encoded(a), a.proc.pid
            a.kill9()
            reader.join()
            check(out, "b's read of the segment failed (see above)")
            check(done_a < n, "a finished before it was killed")
            h.assert_frames_equal(h.decode_images(out[0]), ref, seg + " through b vs the CLI")
            info = b.wait_info(seg, lambda i: i["state"] == "complete")
            enc_b = encoded(b)
            print("  a killed with %d of %d frames done (%d encoded); b completed the segment "
                  "encoding %d" % (done_a, n, enc_a, enc_b))
            check(info["state"] == "complete" and info["frames_done"] == n, "b: %r" % info)
            # b adopts what a stored before it died (a frame found stored when it is about
            # to be encoded is adopted), so it encodes only the rest (2 frames of slack:
            # a's last images may land after its count was read)
            check(enc_b <= n - done_a + 2, "b encoded %d frames; %d were left when a died"
                  % (enc_b, n - done_a))
        # a's temp files are its dead writer's: the next mount on its client removes them
        tmp = os.path.join(store_on("strict", 0), "tmp")
        with h.Mount(store=store_on("strict", 0), source_root=src):
            left = [t for t in os.listdir(tmp) if ".%d." % dead in t]
            check(not left, "temp files of the killed daemon left at restart: %s" % left)
    finally:
        a._cleanup()


@test
def c_disjoint_windows_of_one_source_at_once():
    name, D, F = "long3.mp4", "8", "30"
    src = make_sources("c", name, 1)
    segs = [h.seg_name("c00.mp4", S, D, F) for S in ("20", "120")]
    refs = [h.ref_fps(h.fixture(name), S, D, F) for S in ("20", "120")]
    with h.Mount(store=store_on("strict", 0), source_root=src) as a, \
            h.Mount(store=store_on("strict", 1), source_root=src) as b, logs_on_failure(a, b):
        for m, seg in zip((a, b), segs):
            os.listdir(m.path(seg))
        ea, eb = encoded(a), encoded(b)
        marks, stop = ([], []), []
        watch = [threading.Thread(target=progress, args=(m, seg, len(r), mk, stop))
                 for m, seg, r, mk in zip((a, b), segs, refs, marks)]
        for w in watch:
            w.start()
        try:
            got = in_threads((a.read_segment, segs[0]), (b.read_segment, segs[1]))
        finally:
            for w in watch:
                w.join(timeout=30)
            stop.append(1)
        for blobs, ref, seg in zip(got, refs, segs):
            h.assert_frames_equal(h.decode_images(blobs), ref, seg + " vs the CLI")
        (a0, a1), (b0, b1) = marks
        both = min(a1, b1) - max(a0, b0)
        print("  disjoint windows: a extracted over %.2f s, b over %.2f s, both at once for "
              "%.2f s; encoded %d + %d" % (a1 - a0, b1 - b0, both, encoded(a) - ea,
                                           encoded(b) - eb))
        check(both > 0.25 * min(a1 - a0, b1 - b0),
              "the two windows were not decoded at once: one waited for the other's lease")
        check(encoded(a) - ea == len(refs[0]) and encoded(b) - eb == len(refs[1]),
              "encoded %d + %d for %d + %d frames" % (encoded(a) - ea, encoded(b) - eb,
                                                      len(refs[0]), len(refs[1])))


def read_fresh(path):
    """The file's bytes as the daemon serves them now: the kernel's cached pages of it are
    dropped first (FUSE keeps a frame's pages between opens)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        size = os.fstat(fd).st_size
        data = b""
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            data += chunk
        return size, data
    finally:
        os.close(fd)


def read_while_written(m, seg, ext, n, writer_done, order):
    """Reads every frame of seg through m over and over (first in `order`) until the writer
    is done, then once more: every read as (frame, stat size, bytes)."""
    reads = []
    d = m.path(seg)
    passes = 0
    while True:
        last = writer_done.is_set()
        for k in (order if passes == 0 else range(n)):
            size, data = read_fresh(os.path.join(d, "frame_%05d.%s" % (k + 1, ext)))
            reads.append((k, size, data))
        passes += 1
        if last:
            return reads


@test
def d_default_caching_never_serves_a_partial_frame():
    import random
    name, S, D, F = "light30.mp4", "0", "1", "30"
    src = make_sources("d", name, RUNS)
    ref = h.ref_fps(h.fixture(name), S, D, F)
    n = len(ref)
    rng = random.Random(13)
    bad, total, encs = [], 0, []
    for i in range(RUNS):
        # a new store each time: its image directories are made while the other client
        # renames images into them (a name just made elsewhere can be missing here a moment)
        store = "d%02d" % i
        with h.Mount(store=os.path.join(store_on("cached", 0), store), source_root=src) as a, \
                h.Mount(store=os.path.join(store_on("cached", 1), store), source_root=src) as b, \
                logs_on_failure(a, b):
            ext = "jpg" if i % 2 == 0 else "png"
            seg = h.seg_name("d%02d.mp4" % i, S, D, F, "jpg" if ext == "jpg" else None)
            writer, reader = (a, b) if i % 4 < 2 else (b, a)
            order = list(range(n))
            rng.shuffle(order)
            done = threading.Event()
            ea, eb = encoded(a), encoded(b)
            os.listdir(a.path(seg))
            os.listdir(b.path(seg))

            def write():
                try:
                    return writer.read_segment(seg, ext)
                finally:
                    done.set()
            wrote, reads = in_threads((write,), (read_while_written, reader, seg, ext, n, done,
                                                 order))
            encs.append(encoded(a) - ea + encoded(b) - eb)
            total += len(reads)
            for k, size, data in reads:
                if data != wrote[k] or size != len(wrote[k]):
                    bad.append("%s/frame_%05d.%s: read %d bytes (stat %d)%s, the writer's is %d "
                               "bytes" % (seg, k + 1, ext, len(data), size,
                                          "" if image_complete(data, ext) else " incomplete",
                                          len(wrote[k])))
            ours = h.decode_images(wrote, ext)
            if ext == "png":
                h.assert_frames_equal(ours, ref, seg + " vs the ffmpeg CLI")
            else:
                worst = min(h.psnr(x, y) for x, y in zip(ours, ref))
                check(worst >= 35, "%s: a frame at %.2f dB from the CLI's" % (seg, worst))
    print("  default caching: %d reads of %d sources' frames while the other mount wrote them, "
          "%d wrong; images encoded per source %s (total %d for %d)"
          % (total, RUNS, len(bad), encs, sum(encs), RUNS * n))
    check(not bad, "%d of %d reads served a partial or wrong frame:\n  %s"
          % (len(bad), total, "\n  ".join(bad[:10])))


if __name__ == "__main__":
    if not h.fuse_available():
        print("SKIP: /dev/fuse absent or not root")
        sys.exit(77)
    t0 = time.monotonic()
    with Gluster() as G:
        print("  GlusterFS: glusterd, 2 volumes, 4 clients up in %.1f s" % (time.monotonic() - t0))
        h.main()
