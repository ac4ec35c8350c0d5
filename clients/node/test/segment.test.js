'use strict';
// openSegment, framePath and frameAtTime through a real mount: counts and sizes against
// the directory listing, .hfinfo and the images themselves; the errors a renderer meets;
// hold and the exact time-to-slot mapping.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const {describe, it, before, after} = require('node:test');

const hf = require('..');
const h = require('./helpers');

const skip = h.skipReason();
if (skip) console.log(`# SKIP: ${skip}: openSegment needs a real mount`);

/* [width, height] of a PNG (IHDR) or a baseline/progressive JPEG (SOFn) */
function imageSize(buf) {
  if (buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
  }
  assert.ok(buf[0] === 0xff && buf[1] === 0xd8, 'neither PNG nor JPEG');
  for (let i = 2; i + 9 < buf.length;) {
    assert.strictEqual(buf[i], 0xff, 'JPEG marker expected');
    const marker = buf[i + 1];
    const len = buf.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      return [buf.readUInt16BE(i + 7), buf.readUInt16BE(i + 5)];
    }
    i += 2 + len;
  }
  throw new Error('no SOF in JPEG');
}

describe('openSegment through a real mount', {skip: skip || false}, () => {
  let m;
  const seg = (name) => path.join(m.mnt, name);
  const hfinfo = (dir) => JSON.parse(fs.readFileSync(path.join(dir, '.hfinfo'), 'utf8'));
  const listing = (dir) => fs.readdirSync(dir).filter((n) => n.startsWith('frame_')).sort();
  before(async () => {
    h.checkSetup();
    m = await h.mount();
  });
  after(async () => m && m.stop());

  it('count, size and frames agree with the listing, .hfinfo and the images', async () => {
    const cases = [
      [{src: 'cfr30.mp4', start: 0, duration: 1, fps: 30}, 30, 320, 240, 'png'],
      [{src: 'cfr30.mp4', start: 1.5, duration: 2, fps: 30, format: 'jpg', quality: 5}, 60, 320, 240, 'jpg'],
      [{src: 'cfr30.mp4', start: 0.5, duration: 0.5, fps: 24, width: 160, height: 90, fit: 'cover'}, 12, 160, 90, 'png'],
      [{src: 'cfr30.mp4', start: 0, duration: 0.4, fps: 30, width: 100, height: 100, fit: 'contain', format: 'jpg'},
        12, 100, 75, 'jpg'],
      [{src: 'cfr30.mp4', start: 3, duration: 2, fps: 30}, 30, 320, 240, 'png'], /* clipped by the video's end */
      [{src: 'cfr30.mp4', start: 3, duration: 2, fps: 30, hold: true}, 60, 320, 240, 'png'],
      [{src: 'ntsc.mp4', start: 0, duration: 1, fps: '30000/1001', width: 160}, 30, 160, 120, 'png'],
    ];
    for (const [spec, count, width, height, format] of cases) {
      const dir = hf.segmentPath({...spec, src: path.join(m.mnt, spec.src)});
      const s = await hf.openSegment(dir);
      const names = listing(dir);
      const info = hfinfo(dir);
      const what = path.basename(dir);
      assert.strictEqual(s.path, dir);
      assert.strictEqual(s.count, count, what);
      assert.strictEqual(s.count, names.length, what);
      assert.strictEqual(s.count, info.count, what);
      assert.deepStrictEqual([s.width, s.height], [info.width, info.height], what);
      assert.deepStrictEqual([s.width, s.height], [width, height], what);
      assert.strictEqual(s.format, format);
      assert.strictEqual(s.ext, format);
      assert.strictEqual(s.info.segment, what, 'the path is canonical');
      assert.strictEqual(s.error, null);
      assert.deepStrictEqual(s.framePaths().map((p) => path.basename(p)), names, what);
      for (const k of [0, Math.floor(count / 2), count - 1]) {
        assert.strictEqual(s.framePath(k), path.join(dir, names[k]));
        assert.strictEqual(s.framePath(k), path.join(dir, `frame_${String(k + 1).padStart(5, '0')}.${format}`));
        const buf = fs.readFileSync(s.framePath(k));
        assert.strictEqual(buf.length, fs.statSync(s.framePath(k)).size);
        assert.deepStrictEqual(imageSize(buf), [width, height], `${what} slot ${k}`);
      }
      assert.throws(() => s.framePath(count), RangeError);
      assert.throws(() => s.framePath(-1), RangeError);
      assert.throws(() => s.framePath(0.5), RangeError);
    }
  });

  it('frame names past 99999 widen, as the mount lists them', async () => {
    const dir = seg('cfr30.mp4@0+3334@30@hold');
    const s = await hf.openSegment(dir);
    assert.strictEqual(s.count, 100020);
    assert.strictEqual(path.basename(s.framePath(99998)), 'frame_99999.png');
    assert.strictEqual(path.basename(s.framePath(99999)), 'frame_100000.png');
    assert.strictEqual(path.basename(s.framePath(100019)), 'frame_100020.png');
    for (const k of [99998, 99999, 100019]) assert.ok(fs.statSync(s.framePath(k)).isFile(), s.framePath(k));
    assert.strictEqual(hf.frameName(123456, 'jpg'), 'frame_123457.jpg');
  });

  it('errors: a missing video, an invalid name, a start past the end without hold', async () => {
    for (const name of ['no-such-video.mp4@0+1@30', 'cfr30.mp4@0+0@30', 'cfr30.mp4@0+1@30@png,jpg',
      'cfr30.mp4@-1+1@30', 'cfr30.mp4']) {
      await assert.rejects(hf.openSegment(seg(name)), (e) => {
        assert.ok(e.code === 'ENOENT' || e.code === 'ENOTDIR', `${name}: ${e.code} ${e.message}`);
        assert.match(e.message, /no segment directory at/);
        assert.strictEqual(e.path, seg(name));
        return true;
      }, name);
    }
    const past = seg('cfr30.mp4@5+2@30');
    const sentence = hfinfo(past).error;
    assert.match(sentence, /past the end of cfr30\.mp4/);
    await assert.rejects(hf.openSegment(past), (e) => {
      assert.ok(e instanceof hf.SegmentError);
      assert.strictEqual(e.message, sentence);
      assert.strictEqual(e.code, 'ERR_HFMOUNT_SEGMENT');
      assert.strictEqual(e.info.state, 'error');
      return true;
    });
    const partial = await hf.openSegment(past, {partial: true});
    assert.strictEqual(partial.error, sentence);
    assert.strictEqual(partial.count, 0);
    assert.strictEqual(partial.frameAtTime(0), null);
    const garbage = seg('garbage.mp4@0+1@30');
    await assert.rejects(hf.openSegment(garbage), {message: hfinfo(garbage).error});
  });

  it('hold: past the end of the video every slot is the last frame', async () => {
    const held = await hf.openSegment(hf.segmentPath({src: path.join(h.SRC, 'cfr30.mp4'), mount: m.mnt,
      start: 3, duration: 2, fps: 30, hold: true}));
    const plain = await hf.openSegment(seg('cfr30.mp4@3+1@30'));
    assert.strictEqual(held.hold, true);
    assert.strictEqual(plain.hold, false);
    assert.strictEqual(held.count, 60);
    assert.strictEqual(plain.count, 30);
    const last = fs.readFileSync(plain.framePath(29));
    for (const t of [1, 1.5, '1.999', 2, 2.5, 100]) {
      const p = held.frameAtTime(t);
      const k = Math.min(Math.floor(Number(t) * 30), 59);
      assert.strictEqual(p, held.framePath(k), `t=${t}`);
      assert.ok(fs.readFileSync(p).equals(last), `t=${t}: ${path.basename(p)} is not the last frame`);
    }
    assert.strictEqual(held.frameAtTime(2), held.framePath(59), 'past the clip: the last slot');
    assert.ok(!fs.readFileSync(held.frameAtTime(0.5)).equals(last), 'slot 15 is a frame of its own');
    /* without hold, past the last slot is nothing */
    assert.strictEqual(plain.frameAtTime(1), null);
    assert.strictEqual(plain.frameAtTime(5), null);
    assert.strictEqual(plain.frameAtTime(-0.001), null);
    assert.strictEqual(held.frameAtTime(-0.001), null);
    /* a start at or past the end is no error with hold */
    const after = await hf.openSegment(seg('cfr30.mp4@5+1@30@hold'));
    assert.strictEqual(after.count, 30);
    assert.ok(fs.readFileSync(after.frameAtTime(0.5)).equals(last));
  });

  it('frameAtTime is framePath(floor(t * fps)), exactly, at rational rates', async () => {
    const s = await hf.openSegment(seg('cfr30.mp4@1+2@30'));
    for (const [t, k] of [[0, 0], [0.0333, 0], ['0.0334', 1], [0.1, 3], [0.5, 15], [1, 30], [1.25, 37],
      ['1.9999', 59], [hf.compositionTime(7, 30), 7], ['7/30', 7], [{num: 59, den: 30}, 59]]) {
      assert.strictEqual(s.slotAtTime(t), k, `t=${JSON.stringify(t, (_, v) => (typeof v === 'bigint' ? `${v}` : v))}`);
      assert.strictEqual(s.frameAtTime(t), s.framePath(k));
    }
    assert.strictEqual(s.frameAtTime(2), null);
    /* a clip placed at 4 s on a 30 fps timeline: output frame 150 is 1 s into it */
    assert.deepStrictEqual(hf.compositionTime(150, 30, 4), {num: 1n, den: 1n});
    assert.strictEqual(s.frameAtTime(hf.compositionTime(157, 30, 4)), s.framePath(37));
    assert.strictEqual(s.frameAtTime(hf.compositionTime(119, 30, 4)), null, 'before the clip');
    assert.strictEqual(s.slotAtTime(hf.compositionTime(121, 30, '4.0333')), 0);
    assert.strictEqual(s.slotAtTime(hf.compositionTime(122, '30:1', {num: 121, den: 30})), 1);
    const ntsc = await hf.openSegment(seg('ntsc.mp4@0+1@30000:1001'));
    assert.strictEqual(ntsc.count, 30);
    assert.strictEqual(ntsc.fps, '30000:1001');
    for (let i = 0; i < 30; i++) {
      /* the exact time of slot i, and one microsecond before it */
      assert.strictEqual(ntsc.slotAtTime(hf.compositionTime(i, '30000/1001')), i);
      const before = hf.compositionTime(i, '30000/1001');
      assert.strictEqual(ntsc.slotAtTime({num: before.num * 1000000n - before.den, den: before.den * 1000000n}),
        i - 1 < 0 ? null : i - 1);
    }
    for (const [t, k] of [[0.5, 14], [1, 29], ['1.001', null], [0.03336, 0], [0.03337, 1]]) {
      assert.strictEqual(ntsc.slotAtTime(t), k, `t=${t}`);
    }
    assert.throws(() => s.slotAtTime(NaN), TypeError);
    assert.throws(() => s.slotAtTime('soon'), TypeError);
    const again = await s.refresh();
    assert.strictEqual(again.count, s.count);
  });
});
