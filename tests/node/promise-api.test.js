'use strict';
// The promise API run as one suite twice against the same server: once with the real
// openvidu-node-client 2.32.2, once with camerata/openvidu-node-client. Both must pass every
// assertion, and their normalised transcripts must be identical.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./support/server');
const { runSuite } = require('./support/promise-suite');

let server;
const transcripts = {};

test.before(async () => {
  server = await startServer();
});

test.after(async () => {
  await server.stop();
});

test('real openvidu-node-client@2.32.2', async () => {
  transcripts.real = await runSuite(require('openvidu-node-client'), server, `real${Date.now()}`);
});

test('camerata/openvidu-node-client', async () => {
  transcripts.camerata = await runSuite(require('camerata/openvidu-node-client'), server, `cam${Date.now()}`);
});

test('both give identical observable results', () => {
  assert.ok(transcripts.real && transcripts.camerata, 'both suites ran');
  for (let i = 0; i < Math.max(transcripts.real.length, transcripts.camerata.length); i++) {
    assert.deepEqual(transcripts.camerata[i], transcripts.real[i], `step ${i}`);
  }
});
