#!/usr/bin/env python3
"""
SPEC 2 and 7, the command line: -V/-h, bad options, bad values, unreadable configs,
uncreatable stores and a mountpoint in use are one-line errors with exit status 2,
nothing mounted and nothing in the store touched; config-file warnings name file and
line; without -f the program daemonizes and fusermount3 -u ends it.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402


def clean_env(extra=None, config_home=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFMOUNT_")}
    env["XDG_CONFIG_HOME"] = config_home or "/nonexistent-hf-config"
    env.update(extra or {})
    return env


def must_fail(args, what, mnt, env=None, store=None, mention=None, in_use=False,
              one_line=True):
    """Runs hfmount -f ARGS expecting a one-line error and exit 2 with nothing mounted.
    in_use: mnt is already a mount that must survive (a stray second mount stacked on it
    is removed with one fusermount3 -u)."""
    before = h.tree_state(store) if store and os.path.isdir(store) else None
    p = subprocess.Popen([h.HFMOUNT_BIN, "-f"] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env or clean_env())
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
        p.kill()
        out, err = p.communicate()
        raise AssertionError("%s: hfmount kept running (mounted: %s)" % (what, os.path.ismount(mnt)))
    finally:
        if os.path.ismount(mnt) and not in_use:
            subprocess.run(["fusermount3", "-uz", mnt], stderr=subprocess.DEVNULL)
    err = err.decode(errors="replace")
    lines = [x for x in err.splitlines() if x.strip() and "warning" not in x.lower()]
    check(p.returncode == 2, "%s: exit status %d, expected 2; stderr: %r" % (what, p.returncode, err))
    check(lines and (len(lines) == 1 or not one_line),
          "%s: expected a one-line error, got %r" % (what, err))
    if mention:
        check(all(x in lines[0] for x in mention), "%s: error %r does not name %s"
              % (what, lines[0], mention))
    print("  %s -> exit 2: %s" % (what, lines[0]))
    if before is not None:
        check(h.tree_state(store) == before, "%s: the store was touched" % what)
    return lines[0]


@test
def version_and_help():
    for flag in ("-V", "--version"):
        p = subprocess.run([h.HFMOUNT_BIN, flag], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=clean_env(), timeout=10)
        text = (p.stdout + p.stderr).decode()
        check(p.returncode == 0 and any(c.isdigit() for c in text),
              "%s: exit %d, output %r" % (flag, p.returncode, text))
    for flag in ("-h", "--help"):
        p = subprocess.run([h.HFMOUNT_BIN, flag], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=clean_env(), timeout=10)
        text = (p.stdout + p.stderr).decode()
        check(p.returncode == 0 and "usage" in text.lower(),
              "%s: exit %d, output %r" % (flag, p.returncode, text[:300]))


@test
def bad_options_exit_2_and_touch_nothing():
    with h.tempdir() as tmp:
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        store = os.path.join(tmp, "store")
        # A store that exists already, with a frame in it.
        with h.Mount(store=store) as m:
            m.read_segment("cfr30.mp4@0+0.2@30")
        src = "source_root=" + h.SRC
        must_fail(["-o", src + ",png_level=12", store, mnt], "png_level=12", mnt, store=store,
                  mention=["png_level"])
        must_fail(["-o", src + ",eager=maybe", store, mnt], "eager=maybe", mnt, store=store,
                  mention=["eager"])
        must_fail(["-o", src + ",config=/nonexistent/hf.ini", store, mnt], "unreadable config",
                  mnt, store=store, mention=["/nonexistent/hf.ini"])
        # A usage error may print the usage; it is still exit 2 and touches nothing.
        must_fail(["-o", src, store], "missing mountpoint", mnt, store=store, one_line=False)
        must_fail(["-o", "source_root=/nonexistent-root", store, mnt], "missing source_root",
                  mnt, store=store)
        # An environment variable with a bad value.
        must_fail(["-o", src, store, mnt], "HFMOUNT_DECODE_PNG_LEVEL=x", mnt,
                  env=clean_env({"HFMOUNT_DECODE_PNG_LEVEL": "x"}), store=store,
                  mention=["HFMOUNT_DECODE_PNG_LEVEL"])
        # A store that cannot be created: nothing is created.
        bad_store = os.path.join(tmp, "file", "store")
        open(os.path.join(tmp, "file"), "w").close()
        must_fail(["-o", src, bad_store, mnt], "uncreatable store", mnt)
        fresh = os.path.join(tmp, "fresh-store")
        must_fail(["-o", src + ",png_level=12", fresh, mnt], "bad option, new store", mnt)
        check(not os.path.exists(fresh), "a failed start created the store directory")


@test
def config_file_errors_name_file_line_and_key():
    with h.tempdir() as tmp:
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        store = os.path.join(tmp, "store")
        ini = os.path.join(tmp, "hf.ini")
        with open(ini, "w") as f:
            f.write("[decode]\n\npng_level = 42\n")
        line = must_fail(["-o", "source_root=%s,config=%s" % (h.SRC, ini), store, mnt],
                         "bad value in config", mnt, mention=[ini, "png_level"])
        check("3" in line, "error %r does not name line 3" % line)
        # An unknown key is a warning naming file and line; the mount still comes up.
        with open(ini, "w") as f:
            f.write("[decode]\npng_level = 1\nno_such_key = 5\n")
        with h.Mount(opts=["config=" + ini]) as m:
            m.read_segment("cfr30.mp4@0+0.2@30")
            log = m.log_text()
        warn = [x for x in log.splitlines() if "no_such_key" in x]
        check(warn and ini in warn[0] and "3" in warn[0],
              "unknown key warning does not name file and line: %r" % log[-500:])


@test
def mountpoint_in_use_exit_2():
    with h.Mount() as m, h.tempdir() as tmp:
        must_fail(["-o", "source_root=" + h.SRC, os.path.join(tmp, "store2"), m.mnt],
                  "mountpoint in use", m.mnt, in_use=True)
        check(m.alive() and os.path.ismount(m.mnt), "the first mount went away")
        m.read_segment("cfr30.mp4@0+0.2@30")


def pids_with(arg):
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
            except OSError:
                continue
            if arg.encode() in cmd:
                out.append(int(pid))
    return out


@test
def daemonizes_without_f():
    with h.tempdir() as tmp:
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        store = os.path.join(tmp, "store")
        p = subprocess.run([h.HFMOUNT_BIN, "-o", "source_root=" + h.SRC, store, mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(),
                           timeout=30)
        try:
            check(p.returncode == 0, "hfmount without -f exited %d: %s"
                  % (p.returncode, p.stderr.decode()))
            deadline = time.monotonic() + 10
            while not os.path.ismount(mnt) and time.monotonic() < deadline:
                time.sleep(0.05)
            check(os.path.ismount(mnt), "not mounted after hfmount returned")
            check(pids_with(mnt), "no daemon process holds the mount")
            blobs = [open(os.path.join(mnt, "cfr30.mp4@0+0.2@30", "frame_%05d.png" % k),
                          "rb").read() for k in (1, 6)]
            idx, ref = h.ref_model(h.fixture("cfr30.mp4"), "0", "0.2", "30")
            h.assert_frames_equal(h.decode_images(blobs), [ref[0], ref[5]], "daemonized")
        finally:
            subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while pids_with(mnt) and time.monotonic() < deadline:
                time.sleep(0.05)
            left = pids_with(mnt)
            for pid in left:
                os.kill(pid, 9)
            subprocess.run(["fusermount3", "-uz", mnt], stderr=subprocess.DEVNULL)
        check(not left, "the daemon did not exit after fusermount3 -u")


if __name__ == "__main__":
    h.main()
