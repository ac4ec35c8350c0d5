#!/usr/bin/env node
// What a video renderer does with a segment directory: list it, read every frame file
// with Node's fs, check each is a PNG (or JPEG), and count them.
//
//   node renderer.js SEGMENT_DIR EXPECTED_COUNT [png|jpg]
//
// Prints one JSON object: {ok, count, expected, bytes, names_ok, bad: [...]}; exit 0 iff ok.
'use strict';
const fs = require('fs');
const path = require('path');

const [dir, expectedArg, extArg] = process.argv.slice(2);
const expected = parseInt(expectedArg, 10);
const ext = extArg || 'png';
const SIG = {
  png: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  jpg: Buffer.from([0xff, 0xd8, 0xff]),
}[ext];

const result = {ok: false, count: 0, expected, bytes: 0, names_ok: false, bad: []};
try {
  const names = fs.readdirSync(dir).filter((n) => n.startsWith('frame_')).sort();
  result.count = names.length;
  const want = names.map((_, i) => 'frame_' + String(i + 1).padStart(5, '0') + '.' + ext);
  result.names_ok = names.length === want.length && names.every((n, i) => n === want[i]);
  for (const n of names) {
    const p = path.join(dir, n);
    const st = fs.statSync(p);
    const buf = fs.readFileSync(p);
    result.bytes += buf.length;
    if (buf.length < SIG.length || !buf.subarray(0, SIG.length).equals(SIG)) {
      result.bad.push(n + ': bad signature');
    }
    if (st.size !== buf.length) {
      result.bad.push(n + ': stat size ' + st.size + ' but read ' + buf.length + ' bytes');
    }
  }
  result.ok = result.names_ok && result.count === expected && result.bad.length === 0;
} catch (e) {
  result.bad.push(String(e));
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.ok ? 0 : 1);
