'use strict';
// Recording with real parts: openvidu-browser in headless Chromium publishes while the real
// openvidu-node-client starts and stops INDIVIDUAL and COMPOSED recordings; ffprobe reads the
// files; an HTTP receiver gets the webhook events; a server killed mid-recording leaves a
// playable file and no recording stuck "started" after its restart.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { OpenVidu } = require('openvidu-node-client');
const { launch, receiver, staticServer, waitFor } = require('./support');
const { startServer, ROOT } = require('../node/support/server');

/** A data folder with a recordings folder in it. */
function folders() {
  const base = path.join(ROOT, 'target', 'node-tests');
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'rec-'));
  return { dir, recordings: path.join(dir, 'recordings') };
}

/**
 * A server with recording on (its recordings in a fresh folder, `args` added, run through the
 * command `prefix(recordings)` returns, if given), the test page and Chromium. `start()` (re)starts the server on the same
 * folder; `stop()` stops everything, the server by its PID.
 */
async function rig({ args = [], prefix } = {}) {
  const { dir, recordings } = folders();
  const all = ['--recording', 'true', '--recording-path', recordings, ...args];
  const r = { dir, recordings };
  r.start = async () => {
    r.server = await startServer({ dir, args: all, prefix: prefix && prefix(recordings) });
    return r.server;
  };
  await r.start();
  r.site = await staticServer();
  Object.assign(r, await launch());
  r.stop = async () => {
    await r.cleanup();
    r.site.close();
    await r.server.stop();
  };
  return r;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** ffprobe's streams and format of a file. */
function probe(file) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_streams', '-show_format', file]);
  return JSON.parse(out.toString());
}

/** Decodes a whole file, failing on any error. */
function decodes(file) {
  execFileSync('ffmpeg', ['-v', 'error', '-xerror', '-i', file, '-f', 'null', '-']);
}

/** Downloads a recording's file with the API's credentials. */
async function download(server, url, to) {
  const res = await fetch(url.replace(/^https?:\/\/[^/]+/, server.url), {
    headers: { Authorization: `Basic ${Buffer.from(`OPENVIDUAPP:${server.secret}`).toString('base64')}` },
  });
  assert.equal(res.status, 200, `GET ${url}`);
  fs.writeFileSync(to, Buffer.from(await res.arrayBuffer()));
  return to;
}

/** Unpacks a zip with Python's zipfile (no extra package), returns the names. */
function unzip(file, dir) {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('python3', ['-c', 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])', file, dir]);
  return fs.readdirSync(dir).sort();
}

/** Polls a recording until `status` is one of `wanted`. */
async function until(ov, id, wanted) {
  for (let i = 0; i < 200; i += 1) {
    const r = await ov.getRecording(id);
    if (wanted.includes(r.status)) return r;
    await sleep(100);
  }
  throw new Error(`recording ${id} never reached ${wanted}`);
}

/** Joins `n` publishers to `sid` in one browser context; returns their pages. */
async function publishers(browser, site, ov, session, names) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
  const url = `http://127.0.0.1:${site.address().port}/`;
  const pages = [];
  for (const name of names) {
    const page = await context.newPage();
    await page.goto(url);
    const { token } = await session.createConnection({ role: 'PUBLISHER' });
    await page.evaluate(async (t) => window.ovJoin(t, t), token);
    await page.evaluate(() => window.ovPublish());
    pages.push(page);
  }
  return { context, pages };
}

test('INDIVIDUAL and COMPOSED recordings of two browsers, through openvidu-node-client', async () => {
  const hook = await receiver();
  const r = await rig({
    args: ['--webhook', 'true', '--webhook-endpoint', hook.url, '--webhook-events', '["recordingStatusChanged"]'],
  });
  const { server, site, browser, recordings } = r;
  const ov = new OpenVidu(server.url, server.secret);
  try {
    // No participant yet: the spec's 406.
    const session = await ov.createSession({ customSessionId: 'rec-browser' });
    await assert.rejects(ov.startRecording('rec-browser', { outputMode: 'INDIVIDUAL' }), /406/);
    await assert.rejects(ov.startRecording('nobody-here'), /404/);

    const { context, pages } = await publishers(browser, site, ov, session, ['ann', 'bob']);
    await sleep(1000);

    // INDIVIDUAL: one WebM per stream, zipped with the sync file.
    const started = Date.now();
    const ind = await ov.startRecording('rec-browser', { outputMode: 'INDIVIDUAL', name: 'ind' });
    assert.equal(ind.status, 'started');
    assert.equal(ind.properties.outputMode, 'INDIVIDUAL');
    assert.equal(ind.properties.name, 'ind');
    assert.equal(ind.id, 'rec-browser');
    for (const page of pages) {
      await waitFor(page, (id) => window.events.some((e) => e.type === 'recordingStarted' && e.id === id), ind.id, 'recordingStarted');
    }
    await session.fetch();
    assert.equal(session.recording, true);
    await assert.rejects(ov.startRecording('rec-browser'), /409/);
    await assert.rejects(ov.deleteRecording(ind.id), /409/);
    await sleep(4000);
    const indStopped = await ov.stopRecording(ind.id);
    const indSeconds = (Date.now() - started) / 1000;
    assert.equal(indStopped.status, 'ready');
    assert.ok(indStopped.size > 0);
    assert.ok(Math.abs(indStopped.duration - indSeconds) < 1, `duration ${indStopped.duration} vs ${indSeconds}`);
    assert.match(indStopped.url, /\/openvidu\/recordings\/rec-browser\/ind\.zip$/);
    // Stopping again is the spec's 404, and changes nothing.
    await assert.rejects(ov.stopRecording(ind.id), /404/);
    assert.equal((await ov.getRecording(ind.id)).status, 'ready');
    for (const page of pages) {
      await waitFor(page, (id) => window.events.some((e) => e.type === 'recordingStopped' && e.id === id), ind.id, 'recordingStopped');
    }

    const work = fs.mkdtempSync(path.join(server.dir, 'check-'));
    // Files need the API's credentials unless OPENVIDU_RECORDING_PUBLIC_ACCESS says otherwise.
    const anonymous = await fetch(indStopped.url.replace(/^https?:\/\/[^/]+/, server.url));
    assert.equal(anonymous.status, 401);
    const zip = await download(server, indStopped.url, path.join(work, 'ind.zip'));
    const names = unzip(zip, path.join(work, 'ind'));
    assert.equal(names.length, 3, `zip holds ${names}`);
    const sync = JSON.parse(fs.readFileSync(path.join(work, 'ind', 'ind.json')));
    assert.equal(sync.id, ind.id);
    assert.equal(sync.files.length, 2);
    for (const f of sync.files) {
      assert.equal(f.hasAudio, true);
      assert.equal(f.hasVideo, true);
      assert.equal(f.typeOfVideo, 'CAMERA');
      const file = path.join(work, 'ind', f.name);
      const info = probe(file);
      const kinds = info.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort();
      assert.deepEqual(kinds, ['audio:opus', 'video:vp8']);
      const video = info.streams.find((s) => s.codec_type === 'video');
      assert.equal(`${video.width}x${video.height}`, '320x240');
      const seconds = Number(info.format.duration);
      assert.ok(Math.abs(seconds - (f.endTimeOffset - f.startTimeOffset) / 1000) < 1, `${f.name}: ${seconds} s`);
      assert.ok(seconds > indSeconds - 1.5, `${f.name}: ${seconds} s of ${indSeconds}`);
      decodes(file);
    }

    // COMPOSED: one grid MP4 at the asked resolution, made without a browser.
    const composedStart = Date.now();
    const grid = await ov.startRecording('rec-browser', { outputMode: 'COMPOSED', name: 'grid', resolution: '640x480', frameRate: 15 });
    assert.equal(grid.id, 'rec-browser~1');
    assert.equal(grid.properties.resolution, '640x480');
    assert.equal(grid.properties.frameRate, 15);
    await sleep(4000);
    const gridStopped = await ov.stopRecording(grid.id);
    const gridSeconds = (Date.now() - composedStart) / 1000;
    assert.ok(['stopped', 'ready'].includes(gridStopped.status));
    const gridReady = await until(ov, grid.id, ['ready', 'failed']);
    assert.equal(gridReady.status, 'ready');
    assert.match(gridReady.url, /grid\.mp4$/);
    const mp4 = await download(server, gridReady.url, path.join(work, 'grid.mp4'));
    const info = probe(mp4);
    const video = info.streams.find((s) => s.codec_type === 'video');
    const audio = info.streams.find((s) => s.codec_type === 'audio');
    assert.equal(video.codec_name, 'h264');
    assert.equal(`${video.width}x${video.height}`, '640x480');
    assert.equal(audio.codec_name, 'aac');
    assert.ok(Math.abs(Number(info.format.duration) - gridSeconds) < 1, `composed ${info.format.duration} s vs ${gridSeconds}`);
    decodes(mp4);

    // Another layout: one video full frame, the other small over its corner.
    const pip = await ov.startRecording('rec-browser', {
      outputMode: 'COMPOSED', name: 'pip', resolution: '480x640', recordingLayout: 'PICTURE_IN_PICTURE',
    });
    assert.equal(pip.properties.recordingLayout, 'PICTURE_IN_PICTURE');
    await sleep(2000);
    await ov.stopRecording(pip.id);
    const pipReady = await until(ov, pip.id, ['ready', 'failed']);
    assert.equal(pipReady.status, 'ready');
    const pipInfo = probe(await download(server, pipReady.url, path.join(work, 'pip.mp4')));
    const pipVideo = pipInfo.streams.find((s) => s.codec_type === 'video');
    assert.equal(`${pipVideo.width}x${pipVideo.height}`, '480x640');

    // The list, and deleting.
    const all = await ov.listRecordings();
    assert.deepEqual(all.map((r) => r.id).sort(), ['rec-browser', 'rec-browser~1', 'rec-browser~2']);
    await ov.deleteRecording(ind.id);
    await assert.rejects(ov.getRecording(ind.id), /404/);
    assert.equal(fs.existsSync(path.join(recordings, ind.id)), false);

    // Webhooks: started, stopped, ready for each recording, in order.
    const events = await hook.count(9);
    const seq = (id) => events.filter((e) => e.id === id).map((e) => e.status);
    assert.deepEqual(seq('rec-browser'), ['started', 'stopped', 'ready']);
    assert.deepEqual(seq('rec-browser~1'), ['started', 'stopped', 'ready']);
    const indEvents = events.filter((e) => e.id === 'rec-browser');
    assert.equal(Object.keys(indEvents[0]).length, 13); // 12 members + `event`
    assert.equal(indEvents[1].reason, 'recordingStoppedByServer');
    assert.equal(indEvents[2].size, indStopped.size);
    await context.close();
  } finally {
    await r.stop();
    await hook.close();
  }
});

test('ALWAYS records without a call; a server killed mid-recording leaves a playable file', async () => {
  const r = await rig();
  let { server } = r;
  const { site, browser } = r;
  try {
    let ov = new OpenVidu(server.url, server.secret);
    const session = await ov.createSession({
      customSessionId: 'always',
      recordingMode: 'ALWAYS',
      defaultRecordingProperties: { outputMode: 'INDIVIDUAL', name: 'auto' },
    });
    const { context } = await publishers(browser, site, ov, session, ['solo']);
    // Nobody asked: the first publish started it.
    let rec;
    for (let i = 0; i < 100 && !rec; i += 1) {
      rec = (await ov.listRecordings()).find((r) => r.sessionId === 'always' && r.status === 'started');
      if (!rec) await sleep(100);
    }
    assert.ok(rec, 'ALWAYS started a recording');
    assert.equal(rec.properties.name, 'auto');
    await sleep(4000);

    // SIGKILL mid-recording, then a restart on the same folder.
    await server.stop('SIGKILL');
    await context.close();
    server = await r.start();
    ov = new OpenVidu(server.url, server.secret);
    const after = await ov.getRecording(rec.id);
    assert.ok(['ready', 'failed'].includes(after.status), `status after restart: ${after.status}`);
    assert.equal(after.status, 'ready', 'the stream file written before the kill was recovered');
    const work = fs.mkdtempSync(path.join(server.dir, 'check-'));
    const zip = await download(server, after.url, path.join(work, 'auto.zip'));
    const names = unzip(zip, path.join(work, 'auto'));
    const webm = names.find((n) => n.endsWith('.webm'));
    assert.ok(webm, `zip holds ${names}`);
    const info = probe(path.join(work, 'auto', webm));
    assert.ok(Number(info.format.duration) > 2, `recovered ${info.format.duration} s`);
    decodes(path.join(work, 'auto', webm));
    // Nothing is stuck: the session (gone with the restart) can be recorded again.
    await assert.rejects(ov.stopRecording(rec.id), /404/);
  } finally {
    await r.stop();
  }
});

test('SIGTERM mid-call: browsers told, recording finished and playable, events delivered, draining reported', async () => {
  const hook = await receiver();
  const r = await rig({
    args: ['--webhook', 'true', '--webhook-endpoint', hook.url,
      '--webhook-events', '["participantLeft","recordingStatusChanged","sessionDestroyed"]',
      '--shutdown-grace', '20'],
  });
  let { server } = r;
  const { site, browser, recordings } = r;
  try {
    const ov = new OpenVidu(server.url, server.secret);
    const session = await ov.createSession({ customSessionId: 'stopping' });
    const { context, pages } = await publishers(browser, site, ov, session, ['ann', 'bob']);
    const pending = await session.createConnection({ data: 'not yet joined' });
    await sleep(1000);
    const rec = await ov.startRecording('stopping', { outputMode: 'COMPOSED', name: 'mid-call', resolution: '640x480' });
    await sleep(3000);
    assert.equal((await fetch(`${server.url}/ready`)).status, 200);

    // SIGTERM: the server drains, reports it, and exits by itself within the grace.
    const started = Date.now();
    let gone = false;
    const exited = server.stop('SIGTERM').then(() => { gone = true; });
    let draining = false;
    while (!draining && !gone && Date.now() - started < 15000) {
      const res = await fetch(`${server.url}/ready`).catch(() => null);
      if (res && res.status === 503) draining = (await res.json()).status === 'DRAINING';
      else await sleep(10);
    }
    assert.ok(draining, `/ready reported DRAINING while the server stopped:\n${server.log().split('\n').slice(-25).join('\n')}`);
    await exited;
    assert.ok(Date.now() - started < 20000, `stopped in ${Date.now() - started} ms`);

    // The browsers were told the way OpenVidu tells them.
    for (const page of pages) {
      await waitFor(page, () => window.events.some((e) => e.type === 'sessionDisconnected'
        && e.reason === 'openviduServerStopped'), null, 'sessionDisconnected(openviduServerStopped)');
    }
    // The events of the stop were delivered before the exit.
    const events = hook.bodies.map((b) => b.body);
    const left = events.filter((e) => e.event === 'participantLeft');
    assert.equal(left.length, 2, JSON.stringify(events));
    assert.ok(left.every((e) => e.reason === 'openviduServerStopped'));
    const statuses = events.filter((e) => e.event === 'recordingStatusChanged' && e.id === rec.id).map((e) => e.status);
    assert.ok(statuses.includes('stopped') && statuses.includes('ready'), JSON.stringify(statuses));
    const ready = events.find((e) => e.event === 'recordingStatusChanged' && e.status === 'ready');
    assert.equal(ready.reason, 'openviduServerStopped');
    // The recording's file was finished before the exit: playable.
    const file = path.join(recordings, rec.id, 'mid-call.mp4');
    assert.ok(fs.existsSync(file), `${file} exists`);
    assert.ok(Number(probe(file).format.duration) > 2);
    decodes(file);
    await context.close();

    // The session and its pending connection are kept for the next start.
    server = await r.start();
    const again = new OpenVidu(server.url, server.secret);
    await again.fetch();
    const kept = again.activeSessions.find((s) => s.sessionId === 'stopping');
    assert.ok(kept, 'the session survives a graceful stop');
    assert.deepEqual(kept.connections.map((c) => c.connectionId), [pending.connectionId]);
  } finally {
    await hook.close();
    await r.stop();
  }
});

test('a full disk fails the recording with its reason and leaves nothing stuck', async () => {
  // The server alone sees a 128 KiB tmpfs on its recording folder (a mount namespace of its
  // own, gone with it).
  const r = await rig({
    prefix: (recordings) => {
      fs.mkdirSync(recordings, { recursive: true });
      const mountAndRun = `mount -t tmpfs -o size=128k tmpfs '${recordings}' && exec "$0" "$@"`;
      return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', mountAndRun];
    },
  });
  const { server, site, browser } = r;
  try {
    const ov = new OpenVidu(server.url, server.secret);
    const session = await ov.createSession({ customSessionId: 'full-disk' });
    const { context } = await publishers(browser, site, ov, session, ['filler']);
    const rec = await ov.startRecording('full-disk', { outputMode: 'INDIVIDUAL' });
    assert.equal(rec.status, 'started');
    await sleep(10000);
    // The stream outgrew the disk: the stop reports it failed, with the reason.
    const stopped = await ov.stopRecording(rec.id);
    assert.equal(stopped.status, 'failed');
    const raw = await fetch(`${server.url}/openvidu/api/recordings/${rec.id}`, {
      headers: { Authorization: `Basic ${Buffer.from(`OPENVIDUAPP:${server.secret}`).toString('base64')}` },
    }).then((r) => r.json());
    assert.match(raw.error, /space/i);
    // Nothing stuck: the failed one deletes, and a short recording fits again.
    await ov.deleteRecording(rec.id);
    const again = await ov.startRecording('full-disk', { outputMode: 'INDIVIDUAL', name: 'short' });
    await sleep(500);
    const done = await ov.stopRecording(again.id);
    assert.equal(done.status, 'ready');
    await context.close();
  } finally {
    await r.stop();
  }
});

test('a session with participants but no publisher records an empty INDIVIDUAL recording', async () => {
  const r = await rig({ args: ['--recording-public-access', 'true'] });
  const { server, site, browser } = r;
  try {
    const ov = new OpenVidu(server.url, server.secret);
    const session = await ov.createSession({ customSessionId: 'quiet' });
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${site.address().port}/`);
    const { token } = await session.createConnection({ role: 'SUBSCRIBER' });
    await page.evaluate(async (t) => window.ovJoin(t, 'listener'), token);
    // Active, so the start is accepted (OpenVidu's answer), with nothing to write yet.
    const rec = await ov.startRecording('quiet', { outputMode: 'INDIVIDUAL' });
    assert.equal(rec.status, 'started');
    await sleep(500);
    const done = await ov.stopRecording(rec.id);
    assert.equal(done.status, 'ready');
    const work = fs.mkdtempSync(path.join(server.dir, 'check-'));
    const names = unzip(await download(server, done.url, path.join(work, 'quiet.zip')), path.join(work, 'quiet'));
    assert.deepEqual(names, ['quiet.json']);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(work, 'quiet', 'quiet.json'))).files, []);
    // Public access: the file is served without credentials.
    const anonymous = await fetch(done.url.replace(/^https?:\/\/[^/]+/, server.url));
    assert.equal(anonymous.status, 200);
    assert.equal(anonymous.headers.get('content-type'), 'application/zip');
    await context.close();
  } finally {
    await r.stop();
  }
});

test('a recording outlives its last participant until OPENVIDU_RECORDING_AUTOSTOP_TIMEOUT', async () => {
  const hook = await receiver();
  const r = await rig({
    args: ['--recording-autostop-timeout', '2', '--webhook', 'true', '--webhook-endpoint', hook.url,
      '--webhook-events', '["recordingStatusChanged","sessionDestroyed"]'],
  });
  const { server, site, browser } = r;
  try {
    const ov = new OpenVidu(server.url, server.secret);
    const session = await ov.createSession({ customSessionId: 'autostop' });
    const { context, pages } = await publishers(browser, site, ov, session, ['leaver']);
    const rec = await ov.startRecording('autostop', { outputMode: 'INDIVIDUAL' });
    await sleep(1500);
    await pages[0].evaluate(() => window.ovDisconnect());
    const left = Date.now();
    // The session stays, held by its recording, with nobody in it.
    await sleep(300);
    assert.equal(await session.fetch().then(() => session.recording), true);
    assert.equal(session.connections.length, 0);
    const done = await until(ov, rec.id, ['ready', 'failed']);
    assert.equal(done.status, 'ready');
    const waited = (Date.now() - left) / 1000;
    assert.ok(waited > 1.5, `stopped ${waited} s after the last participant left`);
    const events = await hook.count(4);
    // The session closes once the recording stopped; its file may be ready before or after.
    assert.deepEqual(events.filter((e) => e.event === 'recordingStatusChanged').map((e) => e.status),
      ['started', 'stopped', 'ready']);
    const destroyed = events.find((e) => e.event === 'sessionDestroyed');
    assert.equal(destroyed.reason, 'automaticStop');
    assert.ok(events.indexOf(destroyed) > 1, 'the session outlived the stop of its recording');
    assert.equal(events.find((e) => e.status === 'stopped').reason, 'automaticStop');
    await assert.rejects(session.fetch(), /404/);
    await context.close();
  } finally {
    await r.stop();
    await hook.close();
  }
});

test('a room forced to H.264 records its video as H.264 in Matroska, without transcoding', async () => {
  const r = await rig();
  const { server, site, browser } = r;
  try {
    const ov = new OpenVidu(server.url, server.secret);
    const session = await ov.createSession({ customSessionId: 'h264-rec', forcedVideoCodec: 'H264' });
    const { context } = await publishers(browser, site, ov, session, ['avc']);
    await sleep(1000);
    const rec = await ov.startRecording('h264-rec', { outputMode: 'INDIVIDUAL' });
    await sleep(3000);
    const done = await ov.stopRecording(rec.id);
    assert.equal(done.status, 'ready');
    const work = fs.mkdtempSync(path.join(server.dir, 'check-'));
    const names = unzip(await download(server, done.url, path.join(work, 'h264.zip')), path.join(work, 'h264'));
    const mkv = names.find((n) => n.endsWith('.mkv'));
    assert.ok(mkv, `zip holds ${names}`);
    const info = probe(path.join(work, 'h264', mkv));
    const kinds = info.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort();
    assert.deepEqual(kinds, ['audio:opus', 'video:h264']);
    const video = info.streams.find((s) => s.codec_type === 'video');
    assert.equal(`${video.width}x${video.height}`, '320x240');
    assert.ok(Number(info.format.duration) > 2, `${info.format.duration} s`);
    decodes(path.join(work, 'h264', mkv));
    await context.close();
  } finally {
    await r.stop();
  }
});
