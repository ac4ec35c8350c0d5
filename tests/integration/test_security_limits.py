#!/usr/bin/env python3
"""
SPEC 6a "One user cannot take the mount or the machine from the others" (issue 18,
items 5 and 6), on a mount made by root with allow_other, tried as root and as an
unprivileged second user:

- a 2 s MKV padded to 200 GB with truncate (sparse) costs about its real data, and 20
  hard links of it listed at once leave other users' lookups answering within a second;
- a small file that claims 16000x16000 gives only .hfinfo with the decode.max_pixels
  sentence, and the daemon stays within decode.memory plus a margin;
- listing a directory whose files have segments costs about what listing it without
  them costs (a ratio), and parallel listings do not wedge the mount;
- 200 concurrent segments of one user stay within stated thread, fd and RSS bounds while
  another user's first frame of a fresh segment arrives within max(2 x alone, alone +
  0.5 s) (the floor keeps a 50 ms measurement from flaking on a loaded 2-core machine).

The second user is a uid/gid with no passwd entry, taken with setpriv.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

UID = GID = h.SECOND_UID  # the second user: no passwd entry, no groups

MEMORY = 256 << 20  # decode.memory's default


def as_user(ops, timeout=60):
    return h.probe_as(UID, ops, timeout)


class mount(h.SharedMount):
    """allow_other, with the daemon's threads, descriptors and .hfstats at hand."""

    def proc_status(self, key):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def stats(self):
        with open(self.path(".hfstats"), "rb") as f:
            return json.loads(f.read())


def tree(tmp):
    root = os.path.join(tmp, "src")
    os.makedirs(root)
    for d in (tmp, root):
        os.chmod(d, 0o755)
    shutil.copyfile(h.fixture("cfr30.mp4"), os.path.join(root, "other.mp4"))
    return root


def read_frame(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return len(os.read(fd, 1 << 22))
    finally:
        os.close(fd)


@test
def a_padded_file_costs_its_data_and_blocks_no_one():
    with h.tempdir() as tmp:
        root = tree(tmp)
        pad = os.path.join(root, "pad.mkv")
        h.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", h.fixture("ms30.mkv"),
               "-t", "2", "-c", "copy", pad])
        real = os.path.getsize(pad)
        os.truncate(pad, 200 << 30)  # sparse: no disk
        links = []
        for i in range(20):
            links.append("link%02d.mkv" % i)
            os.link(pad, os.path.join(root, links[-1]))
        with mount(root) as m:
            done = {}

            def ls(name):
                t = time.monotonic()
                try:
                    done[name] = (len(os.listdir(m.path(name + "@0.5+1@10"))), time.monotonic() - t)
                except OSError as e:
                    done[name] = (str(e), time.monotonic() - t)

            ts = [threading.Thread(target=ls, args=(n,), daemon=True) for n in ["pad.mkv"] + links]
            for t in ts:
                t.start()
            time.sleep(0.2)
            r = as_user([("stat", m.path("other.mp4")), ("list", m.path("other.mp4@0+1@2")),
                         ("info", m.path("other.mp4@0+1@2"))], timeout=30)
            for t in ts:
                t.join(40)
            check(all(not t.is_alive() for t in ts), "listing the padded file and its links hangs")
            check(all(x[1] < 1.5 for x in r), "other user's lookups meanwhile: %r" % [x[1] for x in r])
            check(done["pad.mkv"][0] == 11, "the padded file lists %r" % (done["pad.mkv"],))
            st = m.stats()
            idx = st.get("index_bytes_read", 0)
            # 21 sources, each its own index: at most a few times its real data each
            bound = 21 * (4 * real + (4 << 20))
            print("  real data %d B, 21 indexes read %d B (bound %d), slowest listing %.2f s"
                  % (real, idx, bound, max(v[1] for v in done.values())))
            check(idx <= bound, "indexing read %d bytes (bound %d)" % (idx, bound))
            check(m.alive(), "hfmount died")


@test
def index_work_never_holds_every_fuse_thread():
    """70 hard links listed at once by root, each index made slow on purpose (2 s): the
    second user's lookups answer within a second; root's excess gets the busy sentence
    and is indexed when asked again."""
    with h.tempdir() as tmp:
        root = tree(tmp)
        links = []
        for i in range(70):
            links.append("l%02d.mp4" % i)
            os.link(h.fixture("light30.mp4"), os.path.join(root, links[-1]))
        os.environ["HF_TEST_INDEX_DELAY_MS"] = "2000"
        try:
            m = mount(root)
            m.__enter__()
        finally:
            del os.environ["HF_TEST_INDEX_DELAY_MS"]
        try:
            done = {}

            def ls(name):
                try:
                    done[name] = os.listdir(m.path(name + "@0+0.2@10"))
                except OSError as e:
                    done[name] = str(e)

            ts = [threading.Thread(target=ls, args=(n,), daemon=True) for n in links]
            for t in ts:
                t.start()
            time.sleep(0.3)
            r = as_user([("stat", m.path("other.mp4")), ("list", m.path()),
                         ("stat", m.path("other.mp4@0+1@2"))], timeout=60)
            print("  the other user's lookups under 70 slow indexes: %s s"
                  % ", ".join("%.3f" % x[1] for x in r))
            check(all(x[0] not in ("EENOENT", "EEACCES") for x in r), "lookups: %r" % r)
            check(all(x[1] < 1 for x in r), "the other user's lookups took %r" % [x[1] for x in r])
            for t in ts:
                t.join(60)
            check(all(not t.is_alive() for t in ts), "listings hang")
            full = [n for n in links if isinstance(done[n], list) and len(done[n]) == 3]
            busy = [n for n in links if done[n] == [".hfinfo"]]
            print("  root: %d listed, %d told busy" % (len(full), len(busy)))
            check(len(full) + len(busy) == 70 and len(full) >= 2, "root's listings: %r" % done)
            if busy:  # asked again (its .hfinfo, then a listing), it is indexed now
                with open(m.path(busy[0] + "@0+0.2@10", ".hfinfo"), "rb") as f:
                    info = json.loads(f.read())
                check(info.get("error") is None and info.get("count") == 2,
                      ".hfinfo of a busy one asked again: %r" % info)
                # Its frames are there (the kernel may still hold the busy listing of the
                # directory: fs.c's opendir sets cache_readdir whatever segment_prepare said).
                check(read_frame(m.path(busy[0] + "@0+0.2@10", "frame_00002.png")) > 1000,
                      "a busy segment asked again gives no frame")
        finally:
            m.__exit__(None, None, None)


def jpeg(w, h):
    """A baseline grey JPEG of w x h whose every 8x8 block is flat: 2 bits a block (one
    Huffman code "0" for DC category 0, one for EOB), so 16000x16000 is 1 MB of zeros."""
    def seg(marker, payload):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload
    bits = b"\x01" + b"\x00" * 15
    blocks = ((w + 7) // 8) * ((h + 7) // 8)
    return (b"\xff\xd8" + seg(0xdb, b"\x00" + b"\x01" * 64)
            + seg(0xc0, struct.pack(">BHHB", 8, h, w, 1) + b"\x01\x11\x00")
            + seg(0xc4, b"\x00" + bits + b"\x00") + seg(0xc4, b"\x10" + bits + b"\x00")
            + seg(0xda, b"\x01\x01\x00\x00\x3f\x00")
            + b"\x00" * ((2 * blocks + 7) // 8) + b"\xff\xd9")


def huge_avi(path):
    """An MJPEG AVI of three real (decodable) 16000x16000 grey pictures, 3 MB."""
    raw = path + ".mjpeg"
    with open(raw, "wb") as f:
        f.write(jpeg(16000, 16000) * 3)
    h.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "mjpeg", "-framerate", "10",
           "-i", raw, "-c", "copy", path])
    os.unlink(raw)
    os.chmod(path, 0o644)


@test
def a_huge_picture_is_refused_within_the_budget():
    with h.tempdir() as tmp:
        root = tree(tmp)
        huge_avi(os.path.join(root, "huge.avi"))
        with mount(root) as m:
            names = ["huge.avi@0+0.5@10"] + ["huge.avi@0+0.5@10@w=%d,h=%d" % (s, s)
                                             for s in (100,)]
            res = as_user([op for n in names for op in (("list", m.path(n)), ("info", m.path(n)))])
            for i, n in enumerate(names):
                listing, info = res[2 * i][0], res[2 * i + 1][0]
                err = info.get("error") if isinstance(info, dict) else None
                check(listing == [".hfinfo"], "%s lists %r" % (n, listing[:4]))
                check(isinstance(err, str) and "decode.max_pixels" in err and "16000x16000" in err
                      and "\n" not in err, "%s: .hfinfo error %r" % (n, err))
            print("  " + res[1][0]["error"])
            rss = m.peak_rss()
            margin = 200 << 20  # libav, the encoder pool, FUSE and the store
            print("  peak RSS %d MiB (bound %d MiB)" % (rss >> 20, (MEMORY + margin) >> 20))
            if not m.sanitized():  # ASan and TSan have their own shadow memory
                check(rss <= MEMORY + margin, "peak RSS %d MiB" % (rss >> 20))
            check(m.alive(), "hfmount died")


@test
def a_listing_costs_what_the_directory_holds():
    with h.tempdir() as tmp:
        root = tree(tmp)
        n = 1000
        for d in ("with", "without"):
            os.makedirs(os.path.join(root, d))
            for i in range(n):
                os.link(h.fixture("light30.mp4"), os.path.join(root, d, "v%04d.mp4" % i))
        with mount(root) as m:
            best_without = 1e9
            for _ in range(3):  # before any segment exists: what the directory alone costs
                t = time.monotonic()
                os.listdir(m.path("without"))
                best_without = min(best_without, time.monotonic() - t)
            # Every file of "with" gets 20 segments in memory (lookups), five of them used.
            for i in range(n):
                for k in range(20):
                    os.stat(m.path("with", "v%04d.mp4@0+0.%02d@10" % (i, k + 1)))
            for i in range(5):
                read_frame(m.path("with", "v%04d.mp4@0+0.1@10" % i, "frame_00001.png"))

            def timed_ls(d):
                t = time.monotonic()
                names = os.listdir(m.path(d))
                return names, time.monotonic() - t

            best = {}
            for _ in range(3):  # best of three: the page cache and the kernel's lookups settle
                names, dt = timed_ls("with")
                best["with"] = min(best.get("with", 1e9), dt)
            check(len([x for x in names if "@" in x]) == 5, "used segments listed: %r"
                  % [x for x in names if "@" in x])
            ratio = best["with"] / max(best_without, 0.005)
            print("  %d files: %.3f s before any segment, %.3f s with 20000 (ratio %.1f)"
                  % (n, best_without, best["with"], ratio))
            check(ratio < 3, "a listing with segments is %.1f times slower" % ratio)
            out = h.in_threads(*[(timed_ls, "with") for _ in range(16)])
            slowest = max(x[1] for x in out)
            r = as_user([("stat", m.path("other.mp4")), ("list", m.path())], timeout=30)
            print("  16 parallel listings: slowest %.2f s; another user's lookups %.3f s"
                  % (slowest, max(x[1] for x in r)))
            check(slowest < 16 * max(best_without, 0.005) + 1, "parallel listings took %.2f s" % slowest)
            check(all(x[1] < 1 for x in r), "other lookups during listings: %r" % r)


@test
def many_segments_stay_bounded_and_share_the_decoders():
    with h.tempdir() as tmp:
        root = tree(tmp)
        for i in range(3):
            shutil.copyfile(h.fixture("light30.mp4"), os.path.join(root, "u%d.mp4" % i))
        with mount(root) as m:
            # alone: the second user's first frame of a fresh segment (indexed first)
            as_user([("list", m.path("u0.mp4@0.5+1@30"))])
            alone = as_user([("read", m.path("u0.mp4@0.5+1@30", "frame_00001.png"))])[0]
            check(isinstance(alone[0], int) and alone[0] > 1000, "alone: %r" % alone)
            # 200 disjoint 1 s segments (6000 frames) of 50 copies (50 sources), as issue 18
            for i in range(50):
                shutil.copyfile(h.fixture("cfr30.mp4"), os.path.join(root, "c%02d.mp4" % i))
            segs = ["c%02d.mp4@%d+1@30" % (i, s) for i in range(50) for s in range(4)]
            for s in segs:
                os.listdir(m.path(s))  # indexed once: the load below is decoding
            as_user([("list", m.path("u1.mp4@0.5+1@30"))])
            peaks = {"threads": 0, "fds": 0}
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    peaks["threads"] = max(peaks["threads"], m.proc_status("Threads"))
                    peaks["fds"] = max(peaks["fds"], m.fds())
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            load = [threading.Thread(target=read_frame, args=(m.path(s, "frame_00009.png"),),
                                     daemon=True) for s in segs]
            for t in load:
                t.start()
            time.sleep(0.3)
            busy = as_user([("read", m.path("u1.mp4@0.5+1@30", "frame_00001.png"))])[0]
            for t in load:
                t.join(120)
            stop.set()
            sampler.join()
            rss = m.peak_rss()
            limit = max(2 * alone[1], alone[1] + 0.5)
            print("  first frame alone %.3f s, under 200 segments of another user %.3f s (limit %.3f);"
                  " peak threads %d, fds %d, RSS %d MiB"
                  % (alone[1], busy[1], limit, peaks["threads"], peaks["fds"], rss >> 20))
            check(all(not t.is_alive() for t in load), "the 200 segments did not finish")
            check(isinstance(busy[0], int) and busy[0] > 1000, "busy: %r" % busy)
            # Under TSan a frame costs ten times as much and the cores, not the queues, decide:
            # the share is checked on the normal build (and ASan), the races under TSan.
            if "libtsan" not in open("/proc/%d/maps" % m.proc.pid).read():
                check(busy[1] <= limit, "the other user's first frame took %.3f s" % busy[1])
            # FUSE's 64 threads at most, the jobs' (8 x (1 + a decoder thread per core)), the pool
            check(peaks["threads"] <= 100, "%d threads" % peaks["threads"])
            # libfuse's splice keeps a pipe (2 fds) per FUSE thread, so 64 threads are 128 fds;
            # then a source and a lease per running job, the store, inotify: bounded, whatever
            # the number of segments or sources (not one per source)
            check(peaks["fds"] <= 180, "%d fds" % peaks["fds"])
            if not m.sanitized():
                check(rss <= MEMORY + (200 << 20), "peak RSS %d MiB" % (rss >> 20))


if __name__ == "__main__":
    h.main()
