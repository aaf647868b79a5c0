'use strict';
// Media through Camerata's SFU: the unmodified openvidu-browser 2.32.2 in headless Chromium
// with fake camera and microphone. Two PUBLISHERs and a SUBSCRIBER; each receives every
// other publisher's video (frames decoded grow) and audio (packets received grow); mutes
// reach the others; a dropped signaling socket does not stop media; unpublishing is seen; the
// REST view lists publishers and subscribers; every peer connection uses the one media port.
const test = require('node:test');
const assert = require('node:assert/strict');
const { scenario } = require('./scenario');

test('two publishers and a subscriber see and hear each other (VP8)', async () => {
  await scenario({ customSessionId: 'media-vp8' }, 'video/VP8');
});

test('the same with forcedVideoCodec H264', async () => {
  await scenario({ customSessionId: 'media-h264', forcedVideoCodec: 'H264' }, 'video/H264');
});

test('every peer connection shares the one UDP port of CAMERATA_UDP_PORT', async () => {
  await scenario({ customSessionId: 'media-port' }, 'video/VP8', {
    serverArgs: ['--udp-port', '41000'],
    check: (s) => {
      assert.ok(s.ports.length >= 2, `several subscriptions, each with a selected pair: ${s.ports}`);
      assert.deepEqual([...new Set(s.ports)], [41000]);
    },
  });
});

test('the server offers each subscription (mediaServer "mediasoup": prepareReceiveVideoFrom)', async () => {
  await scenario({ customSessionId: 'media-server-offer' }, 'video/VP8', {
    serverArgs: ['--server-offers', 'true'],
  });
});
