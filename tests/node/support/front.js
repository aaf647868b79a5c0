'use strict';
// The front an operator puts before a cluster's nodes (here Debian's HAProxy; a load
// balancer or a floating address does the same): one public address per node, reaching that
// node while it is ready and the other nodes when it is not. A browser holding a token of a
// node that died, or reconnecting from one, so lands on a survivor, which passes its socket
// on to the room's owner. TCP mode: REST and WebSocket pass untouched. Stopped by its PID.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { tempDir } = require('./server');

/** HAProxy's configuration for nodes `{ name, port, front }`. */
function config(nodes) {
  const lines = ['global', '  maxconn 2000', 'defaults', '  mode tcp', '  timeout connect 1s',
    '  timeout client 1h', '  timeout server 1h', '  timeout check 1s', '  option redispatch', '  retries 2'];
  for (const n of nodes) {
    lines.push(`frontend ${n.name}`, `  bind 127.0.0.1:${n.front}`, `  default_backend ${n.name}`,
      `backend ${n.name}`, '  option httpchk GET /ready', '  default-server inter 300ms fall 1 rise 2');
    for (const m of [n, ...nodes.filter((o) => o !== n)]) {
      lines.push(`  server ${m.name} 127.0.0.1:${m.port} check${m === n ? '' : ' backup'}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function haproxy() {
  const bin = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((b) => fs.existsSync(b));
  if (!bin) throw new Error('HAProxy is not installed (the test command installs it)');
  return bin;
}

/** Starts HAProxy in front of `nodes` (`{ name, port, front }`, listening on `port`, public
 * on `front`); resolves once every front port accepts. `stop()` stops it by its PID. */
async function startFront(nodes) {
  const dir = tempDir();
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(file, config(nodes));
  const check = spawnSync(haproxy(), ['-c', '-q', '-f', file], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`HAProxy refused its configuration:\n${check.stderr}${check.stdout}`);
  const child = spawn(haproxy(), ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (c) => { log += c; });
  child.stderr.on('data', (c) => { log += c; });
  for (const n of nodes) {
    for (let i = 0; ; i += 1) {
      if (child.exitCode !== null) throw new Error(`HAProxy exited:\n${log}`);
      const up = await fetch(`http://127.0.0.1:${n.front}/ready`).then((r) => r.ok, () => false);
      if (up) break;
      if (i > 100) throw new Error(`HAProxy's front of ${n.name} did not answer:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    log: () => log,
    /** Stops HAProxy by its PID and removes its folder. */
    stop() {
      return new Promise((resolve) => {
        const done = () => { fs.rmSync(dir, { recursive: true, force: true }); resolve(); };
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', done);
        process.kill(child.pid, 'SIGTERM');
      });
    },
  };
}

module.exports = { startFront };
