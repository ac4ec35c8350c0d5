#!/usr/bin/env python3
"""
clients/node (hfmount-client, issue 19 item 2) through a real mount: its own `node --test`
suite in clients/node/test, each file run here as one test. The suite starts hfmount
itself on temporary stores with source_root = the fixtures, and checks: every segment path
against `hfctl path --mount` (every option, many values, the same refusal sentences),
openSegment's counts, sizes and errors against the listing and .hfinfo, hold and the exact
time-to-slot mapping, findMount against hfctl path's choice, and `npm pack` installed
offline into a temporary project. Node's own counts are checked, not just its exit status.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.normpath(os.path.join(HERE, "..", "..", "clients", "node"))


def leftover_mounts(tmp):
    """Mountpoints under tmp (mountinfo escapes spaces and the like as octal)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if mnt.startswith(tmp + "/"):
                out.append(mnt)
    return out


def node_tests(name, min_pass):
    """node --test clients/node/test/NAME: passes only when every test passed (none
    failed, cancelled or skipped) and at least min_pass of them ran."""
    check(shutil.which("node"), "node is not installed")
    # The suite's temporary stores, mountpoints and npm projects go in a directory of this
    # run's own, so that whatever a killed run leaves mounted there is found and unmounted.
    tmp = tempfile.mkdtemp(prefix="hfnode-run-")
    env = dict(os.environ, HFMOUNT_BIN=h.HFMOUNT_BIN, HFCTL_BIN=h.HFCTL_BIN,
               HF_FIXTURES=h.HF_FIXTURES, HF_SOURCE_ROOT=h.SRC, TMPDIR=tmp)
    try:
        p = subprocess.run(["node", "--test", "--test-reporter=tap", os.path.join("test", name)],
                           cwd=CLIENT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=240)
    finally:
        left = leftover_mounts(tmp)
        for mnt in left:
            subprocess.run(["fusermount3", "-uz", mnt], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    check(not left, "node --test %s left mounted: %s" % (name, left))
    out = p.stdout.decode(errors="replace")
    counts = {k: int(v) for k, v in re.findall(r"^# (pass|fail|cancelled|skipped|todo) (\d+)$",
                                                 out, re.M)}
    for line in out.splitlines():
        if line.startswith("# ") and not line.startswith("# Subtest"):
            print("    node:", line[2:].replace("\\#", "#"))
    check(p.returncode == 0 and counts.get("fail", 1) == 0 and counts.get("cancelled", 1) == 0
          and counts.get("skipped", 1) == 0 and counts.get("pass", 0) >= min_pass,
          "node --test %s: exit %d, %s\n%s" % (name, p.returncode, counts, out[-6000:]))


@test
def paths_equal_hfctl_path():
    node_tests("paths.test.js", 8)


@test
def open_segments_errors_hold_and_time():
    node_tests("segment.test.js", 5)


@test
def find_mount():
    node_tests("mount.test.js", 4)


@test
def npm_pack_installs_and_runs():
    check(shutil.which("npm"), "npm is not installed")
    node_tests("pack.test.js", 1)


if __name__ == "__main__":
    h.main()
