'use strict';
// A real hfmount mount for the tests: hfmount -f on a temp store and mountpoint, with
// source_root = the project's generated fixtures (as tests/integration/hftest.py mounts).
//
// Environment: HFMOUNT_BIN, HFCTL_BIN (default: ../../build/), HF_FIXTURES (default
// ../../build/fixtures), HF_SOURCE_ROOT (default: the newest HF_FIXTURES/src-v*).
// Without /dev/fuse, or not as root, the mount tests are skipped with a message.

const assert = require('assert');
const child = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const REPO = path.resolve(__dirname, '..', '..', '..');
const BUILD = path.join(REPO, 'build');
const HFMOUNT_BIN = process.env.HFMOUNT_BIN || path.join(BUILD, 'hfmount');
const HFCTL_BIN = process.env.HFCTL_BIN || path.join(BUILD, 'hfctl');
const HF_FIXTURES = path.resolve(process.env.HF_FIXTURES || path.join(BUILD, 'fixtures'));

function sourceRoot() {
  if (process.env.HF_SOURCE_ROOT) return path.resolve(process.env.HF_SOURCE_ROOT);
  let best = null;
  for (const d of fs.existsSync(HF_FIXTURES) ? fs.readdirSync(HF_FIXTURES) : []) {
    const m = /^src-v(\d+)$/.exec(d);
    if (m && (!best || Number(m[1]) > best.v)) best = {v: Number(m[1]), d};
  }
  return best ? path.join(HF_FIXTURES, best.d) : null;
}
const SRC = sourceRoot();

/* Why the mount tests cannot run here, or null. */
function skipReason() {
  if (!fs.existsSync('/dev/fuse')) return '/dev/fuse absent';
  if (process.getuid() !== 0) return 'not root (the tests mount hfmount)';
  return null;
}

/* Anything missing that the mount tests need is a failure, not a skip. */
function checkSetup() {
  for (const b of [HFMOUNT_BIN, HFCTL_BIN]) {
    assert.ok(fs.existsSync(b), `${b} missing: build hfmount first or set HFMOUNT_BIN/HFCTL_BIN`);
  }
  assert.ok(SRC && fs.existsSync(path.join(SRC, 'cfr30.mp4')),
    `no fixtures (cfr30.mp4) under ${SRC || HF_FIXTURES}: set HF_FIXTURES or HF_SOURCE_ROOT`);
}

function isMounted(mnt) {
  const info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const escaped = mnt.replace(/[ \t\n\\]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
  return info.split('\n').some((l) => l.split(' ')[4] === escaped);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Starts hfmount; resolves to {mnt, store, tmp, root, stop()}. */
async function mount(root = SRC, opts = [], mntName = 'mnt') {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hfnode-'));
  const store = path.join(tmp, 'store');
  const mnt = path.join(tmp, mntName);
  fs.mkdirSync(mnt);
  const log = fs.openSync(path.join(tmp, 'hfmount.log'), 'w');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HFMOUNT_')));
  env.XDG_CONFIG_HOME = path.join(tmp, 'config');
  const proc = child.spawn(HFMOUNT_BIN, ['-f', '-o', ['source_root=' + root, ...opts].join(','), store, mnt],
    {stdio: ['ignore', log, log], env});
  let exited = null;
  proc.on('exit', (code) => (exited = code));
  const logText = () => fs.readFileSync(path.join(tmp, 'hfmount.log'), 'utf8');
  const deadline = Date.now() + 20000;
  while (!isMounted(mnt)) {
    if (exited !== null) throw new Error(`hfmount exited with ${exited} before mounting:\n${logText()}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`hfmount did not mount within 20 s:\n${logText()}`);
    }
    await sleep(20);
  }
  async function stop() {
    for (let i = 0; i < 50 && isMounted(mnt); i++) {
      if (child.spawnSync('fusermount3', ['-u', mnt]).status === 0) break;
      await sleep(100); /* EBUSY: a file still open */
    }
    const until = Date.now() + 15000;
    while (exited === null && Date.now() < until) await sleep(20);
    if (exited === null) proc.kill('SIGKILL');
    child.spawnSync('fusermount3', ['-uz', mnt], {stdio: 'ignore'});
    fs.closeSync(log);
    const text = logText();
    fs.rmSync(tmp, {recursive: true, force: true});
    assert.strictEqual(exited, 0, `hfmount exited with ${exited}; its log:\n${text}`);
  }
  return {mnt, store, tmp, root, stop};
}

/* hfctl ARGS: {status, stdout, stderr} */
function hfctl(...args) {
  const p = child.spawnSync(HFCTL_BIN, args, {encoding: 'utf8', timeout: 60000});
  return {status: p.status, stdout: p.stdout, stderr: p.stderr};
}

/* hfctl for each argument list, a few at a time (the calls are mostly process start-up) */
async function hfctlMany(argLists, concurrency = 4) {
  const out = new Array(argLists.length);
  let next = 0;
  const one = (args) => new Promise((resolve) => {
    child.execFile(HFCTL_BIN, args, {encoding: 'utf8', timeout: 60000}, (err, stdout, stderr) => {
      resolve({status: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr});
    });
  });
  async function worker() {
    while (next < argLists.length) {
      const i = next++;
      out[i] = await one(argLists[i]);
    }
  }
  await Promise.all(Array.from({length: concurrency}, worker));
  return out;
}

module.exports = {hfctlMany, REPO, HFMOUNT_BIN, HFCTL_BIN, HF_FIXTURES, SRC, skipReason, checkSetup, mount, hfctl};
