'use strict';
// segmentPath against `hfctl path ... --mount MNT` through a real mount: every option,
// many values (numbers, strings, ratios), combinations; invalid values refused by both
// with the same sentence.

const assert = require('assert');
const path = require('path');
const {describe, it, before, after} = require('node:test');

const hf = require('..');
const h = require('./helpers');

const skip = h.skipReason();
if (skip) console.log(`# SKIP: ${skip}: the hfctl path comparisons need a real mount`);

// [value for the library, the same value as hfctl path's argument]
const STARTS = [[0, '0'], [1.5, '1.5'], ['1.50', '1.50'], [1e-7, '0.0000001'], [1.5e-7, '0.00000015'],
  [0.1 + 0.2, '0.30000000000000004'], [12.345, '12.345'], ['000.250', '000.250'], [3n, '3'],
  [123456789.125, '123456789.125'], [1e-17, '0.00000000000000001'], [2.5e5, '250000'], [-0, '0'],
  ['0.00000000000000001', '0.00000000000000001'], ['000000000000000001', '000000000000000001'], [99999999999999, '99999999999999']];
const DURS = [[2, '2'], [0.5, '0.5'], ['2.0', '2.0'], [1 / 3, '0.3333333333333333'], [1e-6, '0.000001'],
  [4, '4'], ['10', '10'], [333333, '333333'], ['0.04', '0.04']];
const RATES = [[30, '30'], [29.97, '29.97'], ['30000/1001', '30000:1001'], ['30000:1001', '30000:1001'],
  ['60000:2002', '60000:2002'], ['23.976', '23.976'], [24, '24'], [{num: 60, den: 2}, '60:2'],
  [{num: 24000n, den: 1001n}, '24000:1001'], [0.5, '0.5'], [1e-3, '0.001'], ['7:8', '7:8'], ['1:3', '1:3'],
  ['2/3', '2:3'], [120, '120'], ['030.00', '030.00'], [30000 / 1001, '29.97002997002997'], [1e7, '10000000'],
  ['1:1024', '1:1024'], ['1:576460752303423488', '1:576460752303423488']];
const OPTS = [[{}, []], [{format: 'png'}, ['png']], [{format: 'jpg'}, ['jpg']],
  [{format: 'jpg', quality: 2}, ['jpg,q=2']], [{format: 'jpg', quality: 5}, ['q=5', 'jpg']],
  [{format: 'jpg', quality: 1}, ['jpg', 'q=1']], [{format: 'jpg', quality: 31}, ['jpg,q=31']],
  [{format: 'jpg', quality: '005'}, ['jpg,q=005']],
  [{width: 960, height: 540}, ['w=960,h=540']], [{width: 320}, ['w=320']], [{height: 180}, ['h=180']],
  [{width: 16384, height: 1}, ['w=16384', 'h=1']], [{width: '00960', height: 540}, ['w=00960,h=540']],
  [{width: 960, height: 540, fit: 'fill'}, ['w=960,h=540,fit=fill']],
  [{width: 960, height: 540, fit: 'contain'}, ['fit=contain,h=540,w=960']],
  [{width: 640, height: 360, fit: 'cover'}, ['w=640,h=360,fit=cover']],
  [{hold: true}, ['hold']], [{hold: false}, []], [{tonemap: true}, ['tonemap']],
  [{tonemap: 'hable'}, ['tonemap=hable']], [{tonemap: 'reinhard'}, ['tonemap=reinhard']],
  [{tonemap: 'mobius'}, ['tonemap=mobius']], [{tonemap: 'clip'}, ['tonemap=clip']], [{tonemap: false}, []],
  [{bt2020: true}, ['bt2020']], [{bt2020: false}, []], [{untagged: 'cli'}, ['untagged=cli']],
  [{format: 'jpg', quality: 5, width: 960, height: 540, fit: 'cover', tonemap: 'clip', hold: true,
    untagged: 'cli'}, ['untagged=cli,hold,tonemap=clip,fit=cover,h=540,w=960,q=5,jpg']],
  [{format: 'png', bt2020: true, width: 1280, hold: true}, ['hold', 'w=1280', 'bt2020', 'png']],
  [{format: 'jpg', width: 960, height: 540, fit: 'cover', hold: true}, ['jpg,w=960,h=540,fit=cover,hold']],
  [{format: 'jpg', tonemap: true, height: 720, untagged: 'cli'}, ['h=720,untagged=cli,tonemap,jpg']],
  [{options: 'hold,jpg'}, ['hold,jpg']], [{options: ['w=10', 'h=20', 'fit=contain']}, ['w=10', 'h=20', 'fit=contain']],
  [{options: ['', 'hold', '']}, ['', 'hold', '']], [{format: 'jpg', options: 'q=7'}, ['jpg,q=7']]];

// Invalid: [library spec (over {start: 0, duration: 1, fps: 30}), hfctl path's arguments]
const BAD = [[{start: -1}, ['-1', '1', '30']], [{start: '-0.5'}, ['-0.5', '1', '30']],
  [{start: '+1'}, ['+1', '1', '30']], [{start: '1e-7'}, ['1e-7', '1', '30']], [{start: ''}, ['', '1', '30']],
  [{start: '1.'}, ['1.', '1', '30']], [{start: '.5'}, ['.5', '1', '30']], [{start: ' 1'}, [' 1', '1', '30']],
  [{start: '1.2.3'}, ['1.2.3', '1', '30']], [{start: 1e21}, ['1000000000000000000000', '1', '30']],
  [{start: '0000000000000000001'}, ['0000000000000000001', '1', '30']], [{start: 'abc'}, ['abc', '1', '30']],
  [{start: 5e-324}, [hfNumber(5e-324), '1', '30']], [{start: '1@2'}, ['1@2', '1', '30']],
  [{duration: 0}, ['0', '0', '30']], [{duration: '0.000'}, ['0', '0.000', '30']],
  [{duration: -2}, ['0', '-2', '30']], [{duration: ''}, ['0', '', '30']], [{duration: '1/2'}, ['0', '1/2', '30']],
  [{duration: 1e6}, ['0', '1000000', '30']], [{duration: 333334, fps: 30}, ['0', '333334', '30']],
  [{fps: 0}, ['0', '1', '0']], [{fps: '0:1'}, ['0', '1', '0:1']], [{fps: '1:0'}, ['0', '1', '1:0']],
  [{fps: '0/5'}, ['0', '1', '0:5']], [{fps: 'a:b'}, ['0', '1', 'a:b']], [{fps: '30:'}, ['0', '1', '30:']],
  [{fps: ':30'}, ['0', '1', ':30']], [{fps: '1:2:3'}, ['0', '1', '1:2:3']], [{fps: '1e3'}, ['0', '1', '1e3']],
  [{fps: -30}, ['0', '1', '-30']], [{fps: '1000000000000000000:1'}, ['0', '1', '1000000000000000000:1']],
  [{fps: '30000//1001'}, ['0', '1', '30000//1001']], [{fps: 1e-18}, ['0', '1', '0.000000000000000001']],
  [{fps: '0.0'}, ['0', '1', '0.0']],
  [{options: 'fit=cover'}, ['0', '1', '30', 'fit=cover']], [{width: 0}, ['0', '1', '30', 'w=0']],
  [{width: 16385}, ['0', '1', '30', 'w=16385']], [{width: 960.5}, ['0', '1', '30', 'w=960.5']],
  [{height: 'abc'}, ['0', '1', '30', 'h=abc']], [{width: 123456}, ['0', '1', '30', 'w=123456']],
  [{quality: 5}, ['0', '1', '30', 'q=5']], [{format: 'jpg', quality: 0}, ['0', '1', '30', 'jpg,q=0']],
  [{format: 'jpg', quality: 32}, ['0', '1', '30', 'jpg,q=32']],
  [{format: 'jpg', quality: '0005'}, ['0', '1', '30', 'jpg,q=0005']],
  [{format: 'png', options: 'jpg'}, ['0', '1', '30', 'png,jpg']], [{tonemap: 'foo'}, ['0', '1', '30', 'tonemap=foo']],
  [{bt2020: true, tonemap: true}, ['0', '1', '30', 'bt2020,tonemap']],
  [{untagged: 'browser'}, ['0', '1', '30', 'untagged=browser']], [{options: 'hold,hold'}, ['0', '1', '30', 'hold,hold']],
  [{options: 'jpg,,q=5'}, ['0', '1', '30', 'jpg,,q=5']], [{options: 'bogus'}, ['0', '1', '30', 'bogus']],
  [{options: 'hold=1'}, ['0', '1', '30', 'hold=1']], [{options: 'untagged'}, ['0', '1', '30', 'untagged']],
  [{options: 'w=1@2'}, ['0', '1', '30', 'w=1@2']], [{options: 'w=1/2'}, ['0', '1', '30', 'w=1/2']],
  [{options: 'tonemap='}, ['0', '1', '30', 'tonemap=']], [{options: ','}, ['0', '1', '30', ',']],
  [{width: 1, height: 1, fit: 'stretch'}, ['0', '1', '30', 'w=1,h=1,fit=stretch']],
  [{width: 1, fit: 'cover'}, ['0', '1', '30', 'w=1,fit=cover']],
  [{format: 'jpg', options: 'JPG'}, ['0', '1', '30', 'jpg,JPG']], [{options: 'w=1,w=2'}, ['0', '1', '30', 'w=1,w=2']]];

// Refused by the library alone (values a command line cannot carry).
const BAD_LIB = [{start: NaN}, {fps: Infinity}, {duration: undefined}, {format: 'webp'}, {hold: 'yes'},
  {start: {}}, {width: [1]}, {options: 5}];

function hfNumber(x) {
  return String(x).replace(/^(\d)(?:\.(\d+))?e-(\d+)$/, (_, a, b = '', e) => '0.' + '0'.repeat(e - 1) + a + b);
}

describe('segmentPath equals hfctl path', {skip: skip || false}, () => {
  let m;
  let video;
  before(async () => {
    h.checkSetup();
    m = await h.mount();
    video = path.join(h.SRC, 'cfr30.mp4');
  });
  after(async () => m && m.stop());

  const big = (k, v) => (typeof v === 'bigint' ? `${v}n` : v);
  let compared = 0;
  let refusedToo = 0;

  /*
   * Each case [spec, cliArgs, src?]: hfctl path decides, and the library must give its
   * path, or (unless mustAccept) its refusal with the same sentence.
   */
  async function agree(cases, mustAccept) {
    const results = await h.hfctlMany(cases.map(([, a, src = video]) => ['path', src, ...a, '--mount', m.mnt]));
    const paths = [];
    cases.forEach(([spec, cliArgs, src = video], i) => {
      const r = results[i];
      const what = `spec ${JSON.stringify(spec, big)} / hfctl path ${JSON.stringify(cliArgs)}`;
      if (r.status === 0 || mustAccept) {
        assert.strictEqual(r.status, 0, `${what}: ${r.stderr}`);
        const mine = hf.segmentPath({src, mount: m.mnt, ...spec});
        assert.strictEqual(mine, r.stdout.replace(/\n$/, ''), what);
        paths.push(mine);
        compared++;
        return;
      }
      assert.strictEqual(r.status, 2, `${what}: ${r.stderr}`);
      assert.throws(() => hf.segmentPath({src, mount: m.mnt, ...spec}),
        (e) => `hfctl path: ${e.message}\n` === r.stderr, `${what}: ${r.stderr}`);
      refusedToo++;
    });
    return paths;
  }

  it('starts, durations, rates (numbers, strings, ratios)', async () => {
    await agree([...STARTS.map(([s, sc]) => [{start: s, duration: 2, fps: 30}, [sc, '2', '30']]),
      ...DURS.map(([d, dc]) => [{start: 1.5, duration: d, fps: 30}, ['1.5', dc, '30']]),
      ...RATES.map(([f, fc]) => [{start: 0, duration: 1, fps: f}, ['0', '1', fc]])], true);
  });

  it('every option, alone and combined', async () => {
    await agree(OPTS.map(([o, oc]) => [{start: 1.5, duration: 2, fps: 30, ...o}, ['1.5', '2', '30', ...oc]]), true);
  });

  it('values crossed with options', async () => {
    const cases = [];
    let i = 0;
    for (const [s, sc] of STARTS) {
      for (const [f, fc] of RATES) {
        const [d, dc] = DURS[i % DURS.length];
        const [o, oc] = OPTS[(i * 7) % OPTS.length];
        if (i++ % 3 === 0) cases.push([{start: s, duration: d, fps: f, ...o}, [sc, dc, fc, ...oc]]);
      }
    }
    await agree(cases, false);
  });

  it('random spellings, valid and not: the same path or the same sentence', async () => {
    let seed = 19;
    const rnd = (n) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    const pick = (a) => a[rnd(a.length)];
    const bits = ['0', '1', '2', '5', '30', '00', '.', '.5', '1.', '9', '000000000', '123456789', ':', '-', 'e', '/'];
    const value = () => Array.from({length: 1 + rnd(4)}, () => pick(bits)).join('');
    const good = () => pick(['0', '1', '2.5', '0.04', '01.50', '30', '29.97', '30000:1001', '2997:100', '1:3', '7']);
    const words = ['png', 'jpg', 'q=5', 'q=0', 'q=031', 'w=10', 'h=20', 'w=0', 'fit=cover', 'fit=fill', 'fit=x', 'hold',
      'bt2020', 'tonemap', 'tonemap=clip', 'tonemap=', 'untagged=cli', 'untagged', '', 'jpg=1', 'w=99999', 'h=016384'];
    const opts = () => Array.from({length: rnd(4)}, () => pick(words)).join(',');
    const cases = [];
    for (let i = 0; i < 150; i++) {
      const a = i % 2 ? [value(), value(), value(), opts()] : [good(), good(), good(), opts()];
      cases.push([{start: a[0], duration: a[1], fps: a[2], options: a[3]}, a]);
    }
    await agree(cases, false);
  });

  it('odd video names, and a video named through the mount', async () => {
    const [weird, inside] = await agree([
      [{start: 0.5, duration: 1, fps: '30000/1001', format: 'jpg'}, ['0.5', '1', '30000:1001', 'jpg'],
        path.join(h.SRC, 'we@ird+name.mp4')],
      [{start: 1, duration: 1, fps: 30, hold: true}, ['1', '1', '30', 'hold'], path.join(m.mnt, 'cfr30.mp4')]], true);
    assert.strictEqual(weird, path.join(m.mnt, 'we@ird+name.mp4@0.5+1@30000:1001@jpg'));
    assert.strictEqual(inside, path.join(m.mnt, 'cfr30.mp4@1+1@30@hold'));
    console.log(`# ${compared} paths equal to hfctl path's, ${refusedToo} generated values refused by both`);
  });

  it('invalid values: refused by both, with the same sentence', async () => {
    const results = await h.hfctlMany(BAD.map(([, cliArgs]) => ['path', video, ...cliArgs, '--mount', m.mnt]));
    for (const [i, [spec, cliArgs]] of BAD.entries()) {
      const r = results[i];
      assert.strictEqual(r.status, 2, `hfctl path ${JSON.stringify(cliArgs)} accepted: ${r.stdout}`);
      const full = {src: video, mount: m.mnt, start: 0, duration: 1, fps: 30, ...spec};
      assert.throws(() => hf.segmentPath(full), (e) => {
        assert.ok(e instanceof hf.SegmentNameError, `${JSON.stringify(spec)}: ${e}`);
        assert.strictEqual(`hfctl path: ${e.message}\n`, r.stderr, JSON.stringify(spec));
        assert.ok(['start', 'dur', 'fps', 'options', 'name', 'video'].includes(e.part));
        return true;
      }, `${JSON.stringify(spec)} accepted`);
    }
    for (const spec of BAD_LIB) {
      assert.throws(() => hf.segmentPath({src: video, mount: m.mnt, start: 0, duration: 1, fps: 30, ...spec}),
        hf.SegmentNameError, JSON.stringify(spec));
    }
    console.log(`# ${BAD.length} invalid values refused by both, ${BAD_LIB.length} by the library`);
  });

  it('names too long and empty file names: the same sentences', () => {
    const long = path.join(h.SRC, 'x'.repeat(250) + '.mp4');
    for (const [src, args] of [[long, ['0', '1', '30', 'jpg']], [h.SRC + '/', ['0', '1', '30']],
      [h.SRC + '/..', ['0', '1', '30']]]) {
      const r = h.hfctl('path', src, ...args, '--mount', m.mnt);
      assert.strictEqual(r.status, 2, r.stdout);
      assert.throws(() => hf.segmentPath({src, mount: m.mnt, start: 0, duration: 1, fps: 30,
        format: args[3]}), (e) => e.message === r.stderr.replace(/^hfctl path: /, '').trim());
    }
  });

  it('mount failures: both refuse (the same sentence where hfctl has one of its own)', () => {
    const cases = [[path.join(h.SRC, 'no-such-video.mp4'), m.mnt, null],
      [video, '/tmp', `/tmp is not an hfmount mount`],
      ['/etc/hostname', m.mnt, `/etc/hostname is not below ${m.mnt}'s source_root ${h.SRC}`]];
    for (const [src, mnt, sentence] of cases) {
      const r = h.hfctl('path', src, '0', '1', '30', '--mount', mnt);
      assert.strictEqual(r.status, 1, r.stdout);
      assert.throws(() => hf.segmentPath({src, mount: mnt, start: 0, duration: 1, fps: 30}), (e) => {
        if (sentence) {
          assert.strictEqual(e.message, sentence);
          assert.strictEqual(r.stderr, `hfctl path: ${sentence}\n`);
          assert.strictEqual(e.code, 'ERR_HFMOUNT_NO_MOUNT');
        } else {
          assert.strictEqual(e.code, 'ENOENT');
        }
        return true;
      });
    }
  });
});

describe('segmentName and parseSegmentName (no mount needed)', () => {
  it('canonical spellings', () => {
    assert.strictEqual(hf.segmentName({src: '/m/clip.mp4', start: 1.5, duration: 2, fps: 30}), 'clip.mp4@1.5+2@30');
    assert.strictEqual(hf.segmentName({src: 'clip.mp4', duration: 2, fps: '60000/2002', format: 'jpg', quality: 2}),
      'clip.mp4@0+2@30000:1001@jpg');
    assert.strictEqual(hf.segmentName({src: 'a.mp4', start: 1e-7, duration: 1e-6, fps: 29.97}),
      'a.mp4@0.0000001+0.000001@29.97');
    const p = hf.parseSegmentName('/mnt/a@b+c.mp4@01.50+2.0@60:2@hold,w=10,jpg,q=9');
    assert.deepStrictEqual(p, {name: 'a@b+c.mp4', start: '1.5', duration: '2', fps: '30', format: 'jpg', quality: 9,
      width: 10, height: null, fit: null, hold: true, bt2020: false, tonemap: null, untagged: null,
      canonical: 'a@b+c.mp4@1.5+2@30@jpg,q=9,w=10,hold'});
    assert.strictEqual(hf.parseSegmentName('clip.mp4@0+0@30'), null);
    assert.strictEqual(hf.parseSegmentName('clip.mp4'), null);
  });
});
