'use strict';
// SDK call overhead: Session.generateToken through the `camerata` addon (both APIs) against
// the real openvidu-node-client, on the same server in the same run, as ratios.
//   node tools/sdkbench/sdkbench.js [--calls N] [--concurrency C] [--bin PATH]
// The server is the `camerata` binary started here (release build when present), stopped by
// its PID at the end.
const path = require('node:path');
const fs = require('node:fs');
const { startServer } = require('../../tests/node/support/server');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const CALLS = Number(arg('--calls', 3000));
const CONCURRENCY = Number(arg('--concurrency', 1));
const SMOKE = process.argv.includes('--smoke');

async function measure(label, makeCall) {
  const calls = SMOKE ? 20 : CALLS;
  for (let i = 0; i < Math.min(100, calls); i++) await makeCall(); // warm-up
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    while (next < calls) {
      next++;
      await makeCall();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { label, calls, seconds, perSecond: calls / seconds, cpuUsPerCall: (cpu.user + cpu.system) / calls };
}

(async () => {
  const root = path.resolve(__dirname, '..', '..');
  const release = path.join(root, 'target', 'release', 'camerata');
  const bin = arg('--bin', process.env.CAMERATA_BIN || (fs.existsSync(release) ? release : undefined));
  if (bin) process.env.CAMERATA_BIN = bin;
  const server = await startServer();
  try {
    const real = require('openvidu-node-client');
    const ours = require('camerata/openvidu-node-client');
    const seed = require('camerata');
    const realOv = new real.OpenVidu(server.url, server.secret);
    realOv.enableProdMode();
    const oursOv = new ours.OpenVidu(server.url, server.secret);
    const realSession = await realOv.createSession();
    const oursSession = await oursOv.createSession();
    const seedSession = new seed.OpenVidu(server.url, server.secret).createSession();
    await seedSession.getSessionId();
    const results = [
      await measure('openvidu-node-client 2.32.2 (axios)', () => realSession.generateToken()),
      await measure('camerata/openvidu-node-client (addon)', () => oursSession.generateToken()),
      await measure('camerata seed API (addon)', () => seedSession.generateToken()),
    ];
    const base = results[0];
    console.log(`sdkbench: generateToken, ${results[0].calls} calls per client, ${CONCURRENCY} in flight, server ${server.url}`);
    console.log('| client | calls/s | client CPU us/call | speed vs openvidu-node-client |');
    console.log('|---|---|---|---|');
    for (const r of results) {
      console.log(`| ${r.label} | ${r.perSecond.toFixed(0)} | ${r.cpuUsPerCall.toFixed(1)} | ${(r.perSecond / base.perSecond).toFixed(2)}x |`);
    }
  } finally {
    await server.stop();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
