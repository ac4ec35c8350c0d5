'use strict';
// The package as a renderer gets it: `npm pack`, installed offline from the tarball into a
// fresh project (no registry: it has no dependencies), then required and imported there.

const assert = require('assert');
const child = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const {describe, it, before, after} = require('node:test');

const PKG = path.resolve(__dirname, '..');
const pkg = require('../package.json');

function npm(args, cwd, env) {
  const p = child.spawnSync('npm', args, {cwd, encoding: 'utf8', timeout: 120000, env});
  assert.strictEqual(p.status, 0, `npm ${args.join(' ')} (exit ${p.status}):\n${p.stdout}\n${p.stderr}`);
  return p.stdout;
}

describe('npm pack, then install from the tarball', () => {
  let tmp;
  let env;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hfnode-pack-'));
    /* hermetic: a cache of our own, no registry, no user config, no audit or funding calls */
    env = {...process.env, npm_config_cache: path.join(tmp, 'cache'), npm_config_userconfig: path.join(tmp, 'npmrc'),
      npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false',
      npm_config_update_notifier: 'false', npm_config_registry: 'http://127.0.0.1:9/'};
  });
  after(() => tmp && fs.rmSync(tmp, {recursive: true, force: true}));

  it('packs the declared files, installs offline and runs from a temporary project', () => {
    assert.deepStrictEqual(Object.keys(pkg.dependencies || {}), [], 'no runtime dependencies');
    const out = JSON.parse(npm(['pack', '--json', '--pack-destination', tmp], PKG, env));
    const tarball = path.join(tmp, out[0].filename);
    assert.strictEqual(out[0].filename, `hfmount-client-${pkg.version}.tgz`);
    const files = out[0].files.map((f) => f.path).sort();
    assert.deepStrictEqual(files, ['README.md', 'index.d.ts', 'index.js', 'index.mjs', 'lib/grammar.js',
      'lib/mounts.js', 'lib/segment.js', 'lib/values.js', 'package.json']);

    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({name: 'app', version: '1.0.0', private: true}));
    npm(['install', '--no-package-lock', tarball], app, env);
    assert.ok(fs.existsSync(path.join(app, 'node_modules', 'hfmount-client', 'index.d.ts')));

    const script = path.join(app, 'render.js');
    fs.writeFileSync(script, [
      "const hf = require('hfmount-client');",
      "const name = hf.segmentName({src: '/srv/media/talk.mp4', start: 61.50, duration: 10, fps: '60000/2002',",
      "  format: 'jpg', quality: 5, width: 960, height: 540, fit: 'cover', hold: true});",
      "const p = hf.parseSegmentName(name);",
      "console.log(JSON.stringify({name, fps: p.fps, hold: p.hold, open: typeof hf.openSegment}));",
    ].join('\n'));
    const r = child.spawnSync(process.execPath, [script], {cwd: app, encoding: 'utf8'});
    assert.strictEqual(r.status, 0, r.stderr);
    assert.deepStrictEqual(JSON.parse(r.stdout), {name: 'talk.mp4@61.5+10@30000:1001@jpg,q=5,w=960,h=540,fit=cover,hold',
      fps: '30000:1001', hold: true, open: 'function'});

    const esm = child.spawnSync(process.execPath, ['--input-type=module', '-e',
      "import {segmentName} from 'hfmount-client'; import hf from 'hfmount-client';" +
      "console.log(segmentName({src: 'a.mp4', start: 1e-7, duration: 2, fps: 29.97}), typeof hf.findMount);"],
    {cwd: app, encoding: 'utf8'});
    assert.strictEqual(esm.status, 0, esm.stderr);
    assert.strictEqual(esm.stdout.trim(), 'a.mp4@0.0000001+2@29.97 function');
  });
});
