#!/usr/bin/env node
'use strict';
/*
 * One render of an HTML composition of video clips, captured the way HTML-video
 * renderers capture it: headless Chromium driven by puppeteer-core; per output frame each
 * visible clip's frame file read with Node's fs, base64-encoded into a data URI, set as the
 * src of an <img> laid over the clip's <video> box, img.decode() awaited for all of them,
 * then one CDP Page.captureScreenshot (JPEG, quality 80), piped to an ffmpeg libx264 encode.
 *
 *   node render.js --spec SPEC.json --mode cli|hfmount --work DIR [--out OUT.mp4]
 *                  [--mount MNT] [--frames N] [--shot-format jpeg|png] [--shots DIR]
 *                  [--chromium PATH] [--result RESULT.json]
 *
 * --mode cli:     what renderers do today: every clip first extracted by the ffmpeg CLI at
 *                 the source's full size, JPEG -q:v 2, the clips in parallel (while the
 *                 browser starts), then captured; the browser scales each frame into its
 *                 box (object-fit: cover).
 * --mode hfmount: no extraction stage: each clip is one hfmount segment path (built with
 *                 hfmount-client), box-sized jpg frames (w=,h=,fit=cover,hold), read as the
 *                 capture reaches them.
 * --shots DIR:    also write each screenshot to DIR/shot_%05d.EXT; --out - skips the encode.
 *
 * SPEC.json: {fps, duration, width, height, background?, clips: [{id, src, mediaStart,
 * start, duration, box: {x, y, w, h}, format?: "jpg"|"png", native?: bool}]} (native: the
 * frames at the source's own size, no w/h/fit; for tests). Prints one JSON object (also
 * written to --result): wall time, first captured frame, CPU seconds of Node, the browser,
 * the encoder and the extraction, and per output frame the time reading frame files
 * (waiting for them), base64-encoding, in the page (set src + decode), in the screenshot
 * and waiting for the encoder to take the screenshot (a full pipe).
 */

const fs = require('fs');
const path = require('path');
const {spawn} = require('child_process');

function parseArgs(argv) {
  const a = {mode: 'hfmount', chromium: '/usr/bin/chromium', shotFormat: 'jpeg', quality: 80};
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    if (k === '--spec') a.spec = v();
    else if (k === '--mode') a.mode = v();
    else if (k === '--work') a.work = v();
    else if (k === '--out') a.out = v();
    else if (k === '--mount') a.mount = v();
    else if (k === '--frames') a.frames = parseInt(v(), 10);
    else if (k === '--shot-format') a.shotFormat = v();
    else if (k === '--quality') a.quality = parseInt(v(), 10);
    else if (k === '--shots') a.shots = v();
    else if (k === '--chromium') a.chromium = v();
    else if (k === '--result') a.result = v();
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.spec || !a.work) throw new Error('--spec and --work are required');
  if (a.mode !== 'cli' && a.mode !== 'hfmount') throw new Error(`--mode ${a.mode}: cli or hfmount`);
  return a;
}

const CLK_TCK = 100; // USER_HZ: Linux reports /proc times in 1/100 s on every architecture

/* utime + stime (+ cutime + cstime when children) of a process, in seconds; 0 if gone. */
function procCpu(pid, children = false) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // fields after "comm)": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    let t = Number(f[11]) + Number(f[12]);
    if (children) t += Number(f[13]) + Number(f[14]);
    return t / CLK_TCK;
  } catch (e) {
    return 0;
  }
}

/* Every live process descended from pid (pid included). */
function descendants(pid) {
  const parent = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ');
      parent.set(Number(d), Number(f[1]));
    } catch (e) { /* exited */ }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    for (const [p, pp] of parent) if (pp === out[i]) out.push(p);
  }
  return out;
}

/*
 * Runs a command under sh so that its CPU time (and its children's) can be read after it
 * exits: the shell waits for it, then writes its own /proc stat (cutime/cstime hold the
 * reaped command's times) to statFile.
 */
function spawnCounted(cmd, args, statFile, opts = {}) {
  const script = '"$@"; rc=$?; cat /proc/$$/stat > "$HF_STAT_FILE"; exit $rc';
  return spawn('sh', ['-c', script, 'sh', cmd, ...args],
    {...opts, env: {...process.env, HF_STAT_FILE: statFile}});
}

function countedCpu(statFile) {
  const f = fs.readFileSync(statFile, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}

function waitExit(child, what) {
  return new Promise((resolve, reject) => {
    let err = '';
    if (child.stderr) child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${what} exited with status ${code}: ${err.slice(-2000)}`));
    });
  });
}

/* The ffmpeg CLI extraction renderers run: full size, JPEG -q:v 2, fps=F. */
async function cliExtract(spec, work) {
  const dirs = [];
  const runs = spec.clips.map((c, i) => {
    const dir = path.join(work, `extract-${i}`);
    fs.rmSync(dir, {recursive: true, force: true});
    fs.mkdirSync(dir, {recursive: true});
    dirs.push(dir);
    const args = ['-nostdin', '-v', 'error', '-ss', String(c.mediaStart), '-i', c.src,
      '-t', String(c.duration), '-vf', `fps=${spec.fps}`, '-q:v', '2',
      path.join(dir, 'frame_%05d.jpg')];
    const statFile = path.join(work, `extract-${i}.stat`);
    const child = spawnCounted('ffmpeg', args, statFile, {stdio: ['ignore', 'ignore', 'pipe']});
    return waitExit(child, `ffmpeg extraction of clip ${c.id}`).then(() => countedCpu(statFile));
  });
  const cpu = (await Promise.all(runs)).reduce((s, x) => s + x, 0);
  const frames = dirs.map((d) => fs.readdirSync(d).filter((n) => n.startsWith('frame_')).sort()
    .map((n) => path.join(d, n)));
  return {cpu, frames};
}

/* Per clip, a function from output frame index to the frame file (or null: not visible). */
function cliFrameSources(spec, extracted) {
  return spec.clips.map((c, i) => (f) => {
    const files = extracted[i];
    const k = Math.floor(f - c.start * spec.fps + 1e-9);
    if (k < 0 || f >= Math.round((c.start + c.duration) * spec.fps) || !files.length) return null;
    return files[Math.min(k, files.length - 1)]; // hold the last frame, as renderers do
  });
}

async function hfFrameSources(spec, mount) {
  const hf = require('hfmount-client');
  const out = [];
  for (const c of spec.clips) {
    const fmt = c.format || 'jpg';
    const opts = {src: c.src, start: c.mediaStart, duration: c.duration, fps: spec.fps,
      format: fmt, hold: true};
    if (!c.native) Object.assign(opts, {width: c.box.w, height: c.box.h, fit: 'cover'});
    if (mount) opts.mount = mount;
    const seg = await hf.openSegment(hf.segmentPath(opts));
    const end = Math.round((c.start + c.duration) * spec.fps);
    out.push((f) => (f >= end ? null : seg.frameAtTime(hf.compositionTime(f, spec.fps, c.start))));
  }
  return out;
}

function pageHtml(spec) {
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  const clips = spec.clips.map((c) => {
    const b = c.box;
    const style = `left:${b.x}px;top:${b.y}px;width:${b.w}px;height:${b.h}px`;
    return `<video id="v-${esc(c.id)}" src="file://${esc(c.src)}" muted playsinline ` +
      `preload="metadata" style="${style}"></video>` +
      `<img id="f-${esc(c.id)}" alt="" decoding="sync" style="${style};visibility:hidden">`;
  }).join('\n');
  return `<!doctype html><html><head><meta charset="utf-8"><style>
html,body{margin:0;width:${spec.width}px;height:${spec.height}px;overflow:hidden;
background:${spec.background || '#202830'}}
video,img{position:absolute;object-fit:cover;display:block}
h1{position:absolute;left:40px;top:552px;margin:0;color:#e8e8e8;font:600 56px sans-serif}
</style></head><body>
${clips}
${spec.title ? `<h1>${esc(spec.title)}</h1>` : ''}
</body></html>`;
}

/* In the page: set each visible clip's <img> src, await every decode, hide the rest. */
function injectInPage(updates, hidden) {
  const pending = [];
  for (const u of updates) {
    const img = document.getElementById('f-' + u.id);
    const video = document.getElementById('v-' + u.id);
    img.src = u.uri;
    pending.push(img.decode());
    img.style.visibility = 'visible';
    video.style.visibility = 'hidden';
  }
  for (const id of hidden) { // outside its time on the timeline: neither is shown
    document.getElementById('f-' + id).style.visibility = 'hidden';
    document.getElementById('v-' + id).style.visibility = 'hidden';
  }
  return Promise.all(pending).then(() => updates.length);
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const spec = JSON.parse(fs.readFileSync(a.spec, 'utf8'));
  fs.mkdirSync(a.work, {recursive: true});
  const puppeteer = require('puppeteer-core');
  const nframes = a.frames || Math.round(spec.duration * spec.fps);
  const now = () => Number(process.hrtime.bigint()) / 1e9;
  const cpu0 = process.cpuUsage();
  const t0 = now();

  // The browser starts at once; for the CLI pipeline the extraction runs meanwhile.
  const extraction = a.mode === 'cli' ? cliExtract(spec, a.work) : null;
  const profile = fs.mkdtempSync(path.join(a.work, 'profile-'));
  const browser = await puppeteer.launch({
    executablePath: a.chromium,
    headless: true,
    userDataDir: profile,
    defaultViewport: {width: spec.width, height: spec.height, deviceScaleFactor: 1},
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
      '--force-color-profile=srgb', '--force-device-scale-factor=1', '--hide-scrollbars',
      '--mute-audio', `--window-size=${spec.width},${spec.height}`],
  });
  const browserPid = browser.process().pid;
  let result;
  try {
    const page = await browser.newPage();
    const htmlPath = path.join(a.work, 'composition.html');
    fs.writeFileSync(htmlPath, pageHtml(spec));
    await page.goto('file://' + htmlPath, {waitUntil: 'load'});
    const cdp = await page.createCDPSession();
    const tReady = now() - t0;

    let sources;
    let extractCpu = 0;
    let tExtracted = 0;
    if (a.mode === 'cli') {
      const ex = await extraction;
      extractCpu = ex.cpu;
      tExtracted = now() - t0;
      sources = cliFrameSources(spec, ex.frames);
    } else {
      sources = await hfFrameSources(spec, a.mount);
    }
    const tSources = now() - t0;

    let encoder = null;
    let encoderDone = null;
    const encStat = path.join(a.work, 'encoder.stat');
    if (a.out && a.out !== '-') {
      encoder = spawnCounted('ffmpeg', ['-nostdin', '-v', 'error', '-y', '-f', 'image2pipe',
        '-framerate', String(spec.fps), '-c:v', a.shotFormat === 'png' ? 'png' : 'mjpeg',
        '-i', '-', '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '18',
        '-pix_fmt', 'yuv420p', a.out], encStat, {stdio: ['pipe', 'ignore', 'pipe']});
      encoderDone = waitExit(encoder, 'the ffmpeg encode');
      encoderDone.catch(() => {});
    }
    if (a.shots) fs.mkdirSync(a.shots, {recursive: true});

    const clip = {x: 0, y: 0, width: spec.width, height: spec.height, scale: 1};
    let tRead = 0; let tB64 = 0; let tInject = 0; let tShot = 0; let tDrain = 0;
    let bytesIn = 0; let images = 0;
    let tFirst = null;
    for (let f = 0; f < nframes; f++) {
      const ta = now();
      const files = sources.map((s) => s(f));
      const visible = spec.clips.filter((_, i) => files[i]);
      const hidden = spec.clips.filter((_, i) => !files[i]).map((c) => c.id);
      const bufs = await Promise.all(files.filter(Boolean).map((p) => fs.promises.readFile(p)));
      const tb = now();
      const updates = bufs.map((b, i) => {
        bytesIn += b.length;
        const mime = b[0] === 0x89 ? 'image/png' : 'image/jpeg';
        return {id: visible[i].id, uri: `data:${mime};base64,${b.toString('base64')}`};
      });
      images += updates.length;
      const tb2 = now();
      await page.evaluate(injectInPage, updates, hidden);
      const tc = now();
      tB64 += tb2 - tb;
      const shot = await cdp.send('Page.captureScreenshot', {
        format: a.shotFormat, quality: a.shotFormat === 'png' ? undefined : a.quality,
        fromSurface: true, optimizeForSpeed: a.shotFormat !== 'png', clip});
      const buf = Buffer.from(shot.data, 'base64');
      const td = now();
      if (tFirst === null) tFirst = td - t0;
      tRead += tb - ta; tInject += tc - tb; tShot += td - tc;
      if (a.shots) {
        fs.writeFileSync(path.join(a.shots, `shot_${String(f + 1).padStart(5, '0')}.` +
          (a.shotFormat === 'png' ? 'png' : 'jpg')), buf);
      }
      if (encoder && !encoder.stdin.write(buf)) {
        const te = now();
        await new Promise((r) => encoder.stdin.once('drain', r)); // the encoder is behind
        tDrain += now() - te;
      }
    }
    const tLoopEnd = now();
    let browserCpu = 0;
    for (const pid of descendants(browserPid)) browserCpu += procCpu(pid, pid === browserPid);
    let encoderCpu = 0;
    if (encoder) {
      encoder.stdin.end();
      await encoderDone;
      encoderCpu = countedCpu(encStat);
    }
    const wall = now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const ms = (x) => Math.round(x / nframes * 1e4) / 10;
    result = {
      mode: a.mode, frames: nframes, images, bytes_in: bytesIn,
      wall_s: wall, first_frame_s: tFirst, page_ready_s: tReady, extracted_s: tExtracted,
      sources_s: tSources, encoder_tail_s: wall - (tLoopEnd - t0),
      loop_s: tLoopEnd - t0 - (a.mode === 'cli' ? tExtracted : tReady),
      cpu_node_s: (cpu.user + cpu.system) / 1e6, cpu_browser_s: browserCpu,
      cpu_encoder_s: encoderCpu, cpu_extract_s: extractCpu,
      read_ms: ms(tRead), base64_ms: ms(tB64), page_inject_ms: ms(tInject - tB64),
      inject_ms: ms(tInject), injection_ms: ms(tRead + tInject), screenshot_ms: ms(tShot),
      encoder_wait_ms: ms(tDrain), frame_ms: ms(tRead + tInject + tShot + tDrain),
    };
  } finally {
    await browser.close();
    fs.rmSync(profile, {recursive: true, force: true});
  }
  const text = JSON.stringify(result);
  if (a.result) fs.writeFileSync(a.result, text + '\n');
  process.stdout.write(text + '\n');
}

main().catch((e) => {
  process.stderr.write(`render.js: ${e && e.stack || e}\n`);
  process.exit(1);
});
