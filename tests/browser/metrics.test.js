'use strict';
// `/metrics` as a browser call goes on and off: two openvidu-browser publishers that receive
// each other move the room, participant, publisher and subscriber gauges, the RTP and peer
// connection figures and the request counters; when they leave, the gauges fall back. Read
// through the REST credentials on the main port and, without them, on CAMERATA_METRICS_BIND.
const test = require('node:test');
const assert = require('node:assert/strict');
const { launch, receiver, staticServer, waitFor } = require('./support');
const { startServer, http: rest, freePort } = require('../node/support/server');

/** Parses the text format into { 'name{labels}': value }. */
function parse(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('metrics follow a browser call on and off', async () => {
  const metricsPort = await freePort();
  const hook = await receiver();
  const camerata = await startServer({
    args: ['--metrics-bind', `127.0.0.1:${metricsPort}`, '--webhook', 'true', '--webhook-endpoint', hook.url],
  });
  const site = await staticServer();
  const { browser, cleanup } = await launch();
  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    return parse(await res.text());
  };
  try {
    // The main port wants the REST credentials.
    assert.equal((await fetch(`${camerata.url}/metrics`)).status, 401);
    const authed = await rest(camerata, 'GET', '/metrics');
    assert.equal(authed.status, 200);
    assert.match(authed.text, /^# HELP /m);

    const before = await scrape();
    assert.equal(before.camerata_rooms, 0);
    assert.ok(before.process_resident_memory_bytes > 0, 'process memory');
    assert.ok(before.process_open_fds > 0, 'open files');
    assert.ok('process_cpu_seconds_total' in before);

    const sid = (await rest(camerata, 'POST', '/openvidu/api/sessions', { customSessionId: 'metered' })).json.id;
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    const pages = [];
    const ids = [];
    for (const name of ['ann', 'bob']) {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${site.address().port}/`);
      await page.evaluate(() => { window.autoSubscribe = true; });
      const token = (await rest(camerata, 'POST', `/openvidu/api/sessions/${sid}/connection`, {})).json.token;
      ids.push(await page.evaluate(([t, n]) => window.ovJoin(t, n), [token, name]));
      await page.evaluate(() => window.ovPublish());
      pages.push(page);
    }
    for (const [i, page] of pages.entries()) {
      await waitFor(page, async (other) => {
        const s = (await window.ovStats())[other];
        return s && s.frames > 30;
      }, ids[1 - i], 'frames from the other');
    }
    await sleep(2500); // a receiver report or two
    const during = await scrape();
    assert.equal(during.camerata_rooms, 1);
    assert.equal(during['camerata_participants{protocol="openvidu"}'], 2);
    assert.equal(during['camerata_publishers{protocol="openvidu"}'], 2);
    assert.equal(during['camerata_subscribers{protocol="openvidu"}'], 2);
    assert.equal(during['camerata_peer_connections{state="connected",transport="udp"}'], 4);
    assert.ok(during.camerata_rtp_packets_received_total > 100, `${during.camerata_rtp_packets_received_total} received`);
    assert.ok(during.camerata_rtp_packets_forwarded_total > 100);
    assert.ok(during.camerata_rtp_bytes_forwarded_total > during.camerata_rtp_packets_forwarded_total * 12);
    assert.ok(during['camerata_keyframe_requests_total{direction="sent"}'] >= 1, 'keyframes asked for new subscribers');
    assert.ok(during.camerata_keyframe_request_latency_seconds_count >= 1, 'keyframe latency observed');
    assert.ok(during.camerata_receiver_rtt_seconds_count >= 1, 'receiver reports give a round-trip time');
    assert.ok(during.camerata_receiver_loss_fraction_count >= 1);
    assert.ok(during.camerata_journal_commit_seconds_count > 0);
    assert.ok(during.camerata_webhook_delivered_total >= 4, 'webhook deliveries counted');
    assert.equal(during['camerata_outbox_backlog{consumer="webhook"}'], 0);
    const created = 'camerata_http_request_duration_seconds_count{method="POST",route="/openvidu/api/sessions/{session}/connection",status="200"}';
    assert.equal(during[created], 2);
    // Every series the Grafana dashboard in docs/ plots is served.
    const dashboard = require('../../docs/grafana-dashboard.json');
    const served = Object.keys(during).map((k) => k.split('{')[0]);
    for (const p of dashboard.panels) {
      for (const t of p.targets) {
        for (const name of t.expr.match(/\b(camerata|process)_[a-z_]+/g)) {
          assert.ok(served.includes(name), `${p.title}: ${name} is not served`);
        }
      }
    }
    // Counters only grow while media flows.
    await sleep(1000);
    const later = await scrape();
    assert.ok(later.camerata_rtp_packets_forwarded_total > during.camerata_rtp_packets_forwarded_total);

    // Off: the browsers leave; the gauges fall back, the counters stay.
    await context.close();
    let after;
    for (let i = 0; i < 100; i += 1) {
      after = await scrape();
      if (!after['camerata_participants{protocol="openvidu"}'] && !after['camerata_peer_connections{state="connected",transport="udp"}']) break;
      await sleep(100);
    }
    assert.ok(!after['camerata_participants{protocol="openvidu"}'], 'nobody left in rooms');
    assert.ok(!after['camerata_peer_connections{state="connected",transport="udp"}'], 'no peer connection left');
    assert.ok(after.camerata_rtp_packets_forwarded_total >= later.camerata_rtp_packets_forwarded_total);
  } finally {
    await cleanup();
    site.close();
    await camerata.stop();
    await hook.close();
  }
});
