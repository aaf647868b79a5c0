'use strict';
// The curated type declarations and the runtime exports name the same things.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');

function declared(file) {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const names = new Set();
  for (const m of text.matchAll(/^export declare (?:class|const|function) (\w+)/gm)) names.add(m[1]);
  return [...names].sort();
}

test('index.d.ts declares exactly what index.js exports', () => {
  assert.deepEqual(declared('index.d.ts'), Object.keys(require('camerata')).sort());
});

test('openvidu-node-client.d.ts declares exactly what the entry point exports', () => {
  assert.deepEqual(
    declared('openvidu-node-client.d.ts'),
    Object.keys(require('camerata/openvidu-node-client')).sort(),
  );
});

test('the promise entry point exports what the real client exports', () => {
  const real = Object.keys(require('openvidu-node-client')).sort();
  const ours = Object.keys(require('camerata/openvidu-node-client')).sort();
  assert.deepEqual(ours, real);
});
