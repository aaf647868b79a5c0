'use strict';
// ICE over TCP: run in a network namespace that drops every UDP packet (tests/browser/run.sh),
// so media can only flow over the server's passive TCP candidates.
const test = require('node:test');
const assert = require('node:assert/strict');
const { scenario } = require('../scenario');

test('media flows over ICE-TCP when UDP is blocked', async () => {
  await scenario({ customSessionId: 'media-tcp' }, 'video/VP8', {
    serverArgs: ['--ice-tcp', 'true'],
    check: (s) => assert.deepEqual([...new Set(s.protocols)], ['tcp']),
  });
});
