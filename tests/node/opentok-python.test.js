'use strict';
// The Python OpenTok SDK (PyPI `opentok`, pinned in tests/python/requirements.txt) against
// Camerata: its documented create-session examples, the tokens it mints (JWT and T1) joining
// through the OpenVidu signaling with their roles and data, and its signal, list, moderation
// and archive calls. The test command makes the virtual environment (target/pyenv);
// CAMERATA_PYTHON names another interpreter that has the package.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ROOT } = require('./support/server');
const { PROJECT, openTokServer, rpcJoin } = require('./support/opentok');

const PYTHON = process.env.CAMERATA_PYTHON || path.join(ROOT, 'target', 'pyenv', 'bin', 'python');
const SCRIPT = path.join(ROOT, 'tests', 'python', 'opentok_seed.py');

function python(server, args) {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, [SCRIPT, ...args], {
      env: {
        ...process.env,
        CAMERATA_URL: server.url,
        OPENTOK_KEY: PROJECT.key,
        OPENTOK_SECRET: PROJECT.secret,
        OPENVIDU_SECRET: server.secret,
      },
      timeout: 60000,
    }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`python ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop()));
    });
  });
}

test('the Python opentok SDK: documented sessions, its tokens at join, its calls', async () => {
  assert.ok(fs.existsSync(PYTHON),
    `no Python with opentok at ${PYTHON}: run the README test command, or set CAMERATA_PYTHON`);
  const { server } = await openTokServer(['--recording', 'true']);
  const joined = [];
  try {
    const made = await python(server, ['create']);
    assert.equal(made.sessions.length, 6);
    const sid = made.session;
    const expected = {
      jwt_default: ['PUBLISHER', ''],
      jwt_moderator: ['MODERATOR', 'name=Johnny'],
      t1_subscriber: ['SUBSCRIBER', ''],
      t1_publisheronly: ['PUBLISHER_ONLY', 'a b'],
    };
    const members = {};
    for (const [name, [role, data]] of Object.entries(expected)) {
      const c = await rpcJoin(server, sid, made.tokens[name]);
      joined.push(c);
      assert.equal(c.joined.result && c.joined.result.role, role, `${name}: ${JSON.stringify(c.joined)}`);
      assert.equal(c.joined.result.metadata, data ? `{}%/%${data}` : '{}', name);
      members[name] = c;
    }
    // A Python token for one session does not open another.
    const foreign = await rpcJoin(server, made.routed, made.tokens.jwt_default);
    joined.push(foreign);
    assert.match(foreign.joined.error.message, /is for another session/);

    const target = members.t1_subscriber.joined.result.id;
    assert.deepEqual(await python(server, ['calls', sid, target]), { ok: true });
    await members.jwt_moderator.note('sendMessage', (p) => p.data === 'from python' && p.type === 'signal:py');
    await members.t1_subscriber.note('sendMessage', (p) => p.data === 'to one');
    await members.t1_subscriber.note('participantEvicted');
    assert.ok(!members.jwt_moderator.notes.some((n) => n.params && n.params.data === 'to one'));
  } finally {
    for (const c of joined) await c.close().catch(() => {});
    await server.stop();
  }
});
