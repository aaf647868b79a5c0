'use strict';
// A throwaway PostgreSQL for one test, on 127.0.0.1 of the network namespace the test runs
// in (the browser suites' namespaces cannot reach the one the test command starts): a new
// data folder, a free port, stopped by its PID.
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort } = require('./server');

function pgBin() {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const bin = versions.map((v) => path.join(root, v, 'bin')).find((b) => fs.existsSync(path.join(b, 'initdb')));
  if (!bin) throw new Error('PostgreSQL is not installed (the test command installs it)');
  return bin;
}

/** Starts PostgreSQL; resolves to `{ url(db), createDatabase(name), stop() }`. */
async function startPostgres() {
  const bin = pgBin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camerata-pg-'));
  const root = process.getuid && process.getuid() === 0;
  // As root, PostgreSQL runs as its own user.
  const as = (cmd, args) => (root ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);
  if (root) execFileSync('chown', ['postgres', dir]);
  const port = await freePort();
  const [c1, a1] = as(path.join(bin, 'initdb'), ['-D', path.join(dir, 'data'), '-U', 'postgres', '-A', 'trust', '--no-sync']);
  execFileSync(c1, a1, { stdio: 'ignore' });
  const [c2, a2] = as(path.join(bin, 'pg_ctl'), ['-D', path.join(dir, 'data'), '-l', path.join(dir, 'log'), '-w',
    '-o', `-h 127.0.0.1 -p ${port} -k ${dir} -c fsync=off`, 'start']);
  execFileSync(c2, a2, { stdio: 'ignore' });
  const pid = Number(fs.readFileSync(path.join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  const url = (db = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${db}`;
  return {
    url,
    createDatabase(name) {
      execFileSync(path.join(bin, 'psql'), [url(), '-q', '-c', `CREATE DATABASE ${name}`], { stdio: 'ignore' });
      return url(name);
    },
    /** The rows `sql` selects in database `db`, each as its columns. */
    query(db, sql) {
      const out = execFileSync(path.join(bin, 'psql'), [url(db), '-At', '-F', '\t', '-c', sql], { encoding: 'utf8' });
      return out.split('\n').filter((l) => l).map((l) => l.split('\t'));
    },
    /** Stops it by its PID (fast shutdown) and removes its folder. */
    async stop() {
      try { process.kill(pid, 'SIGINT'); } catch { /* gone */ }
      for (let i = 0; i < 100; i += 1) {
        try { process.kill(pid, 0); } catch { break; }
        await new Promise((r) => setTimeout(r, 100));
      }
      spawnSync('rm', ['-rf', dir]);
    },
  };
}

module.exports = { startPostgres };
