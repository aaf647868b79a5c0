'use strict';
// Media through Camerata's SFU: the unmodified openvidu-browser 2.32.2 in headless Chromium
// with fake camera and microphone. Two PUBLISHERs and a SUBSCRIBER; each receives every
// other publisher's video (frames decoded grow) and audio (packets received grow); mutes
// reach the others; a dropped signaling socket does not stop media; unpublishing is seen; the
// REST view lists publishers and subscribers.
const test = require('node:test');
const assert = require('node:assert/strict');
const { scenario } = require('./scenario');

test('two publishers and a subscriber see and hear each other (VP8)', async () => {
  await scenario({ customSessionId: 'media-vp8' }, 'video/VP8');
});

test('the same with forcedVideoCodec H264', async () => {
  await scenario({ customSessionId: 'media-h264', forcedVideoCodec: 'H264' }, 'video/H264');
});

test('media ports come from CAMERATA_UDP_PORT_RANGE', async () => {
  await scenario({ customSessionId: 'media-ports' }, 'video/VP8', {
    serverArgs: ['--udp-port-range', '41000-41040'],
    check: (s) => {
      assert.ok(s.ports.length > 0, 'a selected candidate pair');
      for (const p of s.ports) assert.ok(p >= 41000 && p <= 41040, `port ${p} in range`);
    },
  });
});
