'use strict';
// findMount and segmentPath without `mount`: the mount whose source_root holds a file (the
// most specific one), a path inside a mount staying in it, as hfctl path finds them.

const assert = require('assert');
const child = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const {describe, it, before, after} = require('node:test');

const hf = require('..');
const h = require('./helpers');

const skip = h.skipReason();
if (skip) console.log(`# SKIP: ${skip}: findMount needs a real mount`);

describe('findMount through real mounts', {skip: skip || false}, () => {
  let fixtures; /* source_root = the fixtures, like every test mount (others may exist) */
  let own; /* source_root = a directory only this test knows, so the answer is ours */
  let root;
  before(async () => {
    h.checkSetup();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'hfnode-root-'));
    fs.mkdirSync(path.join(root, 'media', 'deeper'), {recursive: true});
    fs.copyFileSync(path.join(h.SRC, 'cfr30.mp4'), path.join(root, 'media', 'clip.mp4'));
    fs.copyFileSync(path.join(h.SRC, 'cfr30.mp4'), path.join(root, 'media', 'deeper', 'clip two.mp4'));
    fixtures = await h.mount();
    own = await h.mount(root, [], 'mount point'); /* mountinfo writes the space as \\040 */
  });
  after(async () => {
    if (own) await own.stop();
    if (fixtures) await fixtures.stop();
    if (root) fs.rmSync(root, {recursive: true, force: true});
  });

  /* hfctl path without --mount: the directory it picked, or null when it found none */
  function hfctlDir(src) {
    const r = h.hfctl('path', src, '0', '1', '30');
    if (r.status === 1 && /no hfmount mount serves/.test(r.stderr)) return null;
    assert.strictEqual(r.status, 0, r.stderr);
    return path.dirname(r.stdout.trim());
  }

  it('a file under a source_root: the mount that serves it', () => {
    const clip = path.join(root, 'media', 'clip.mp4');
    const found = hf.findMount(clip);
    assert.deepStrictEqual(found, {mountpoint: own.mnt, sourceRoot: root, path: path.join(own.mnt, 'media', 'clip.mp4')});
    assert.strictEqual(path.dirname(found.path), hfctlDir(clip));
    assert.ok(fs.statSync(found.path).isFile());
    const spaced = path.join(root, 'media', 'deeper', 'clip two.mp4');
    assert.strictEqual(hf.findMount(spaced).path, path.join(own.mnt, 'media', 'deeper', 'clip two.mp4'));
    const p = hf.segmentPath({src: spaced, start: 0, duration: 1, fps: 30, format: 'jpg'});
    assert.strictEqual(p, path.join(own.mnt, 'media', 'deeper', 'clip two.mp4@0+1@30@jpg'));
    assert.strictEqual(path.dirname(p), hfctlDir(spaced));
    /* relative paths are the working directory's, as for hfctl path */
    const cwd = process.cwd();
    try {
      process.chdir(path.join(root, 'media'));
      assert.strictEqual(hf.findMount('clip.mp4').path, found.path);
      assert.strictEqual(hf.segmentPath({src: 'clip.mp4', duration: 1, fps: 30}), path.join(own.mnt, 'media', 'clip.mp4@0+1@30'));
    } finally {
      process.chdir(cwd);
    }
  });

  it('the fixtures: the same mount hfctl path picks (other test mounts may share the root)', () => {
    const video = path.join(h.SRC, 'cfr30.mp4');
    /* other engineers' test mounts of the same root come and go: ask both a few times */
    let found;
    let theirs;
    for (let i = 0; i < 5; i++) {
      found = hf.findMount(video);
      theirs = hfctlDir(video);
      if (found && path.dirname(found.path) === theirs) break;
      child.execFileSync('sleep', ['0.2']);
    }
    assert.ok(found, 'no mount found for the fixtures');
    assert.strictEqual(found.sourceRoot, h.SRC);
    assert.strictEqual(path.dirname(found.path), theirs);
    assert.ok(hf.listMounts().includes(fixtures.mnt));
    assert.strictEqual(hf.findMount(video, {mount: fixtures.mnt}).path, path.join(fixtures.mnt, 'cfr30.mp4'));
    assert.strictEqual(hf.findMount(video, {mount: own.mnt}), null, 'not below that mount\'s source_root');
  });

  it('a path inside a mount stays in it', () => {
    for (const m of [fixtures, own]) {
      const inside = m === own ? path.join(own.mnt, 'media', 'clip.mp4') : path.join(fixtures.mnt, 'cfr30.mp4');
      const found = hf.findMount(inside);
      assert.deepStrictEqual(found, {mountpoint: m.mnt, sourceRoot: m.root, path: inside});
      assert.strictEqual(hf.segmentPath({src: inside, start: 1, duration: 1, fps: 30}), `${inside}@1+1@30`);
      assert.strictEqual(path.dirname(inside), hfctlDir(inside));
      assert.throws(() => hf.segmentPath({src: inside, mount: m === own ? fixtures.mnt : own.mnt, duration: 1, fps: 30}),
        {code: 'ERR_HFMOUNT_NO_MOUNT', message: new RegExp(`is inside the hfmount mount ${m.mnt}, not`)});
    }
  });

  it('no mount: null from findMount, an Error from segmentPath; a missing file is the fs error', () => {
    const outside = path.join(os.tmpdir(), `hfnode-outside-${process.pid}.mp4`);
    fs.writeFileSync(outside, 'x');
    try {
      const expect = hfctlDir(outside); /* null unless someone mounts a source_root above /tmp */
      const found = hf.findMount(outside);
      assert.strictEqual(found && path.dirname(found.path), expect);
      if (!expect) {
        assert.throws(() => hf.segmentPath({src: outside, duration: 1, fps: 30}),
          {code: 'ERR_HFMOUNT_NO_MOUNT', message: `no hfmount mount serves ${outside}`});
      }
    } finally {
      fs.unlinkSync(outside);
    }
    assert.throws(() => hf.findMount(path.join(root, 'media', 'missing.mp4')), {code: 'ENOENT'});
  });
});
