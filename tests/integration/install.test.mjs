// Installing: `make install-files` (what `make install` runs after `make
// all`) into a scratch root, then that installed aimaas started from there
// serves the console from share/aimaas/ui; the .deb (`make deb-package`, the
// packaging step of `make deb`) checked with dpkg-deb: files, control
// (Depends), conffiles, the maintainer scripts (sh -n, then run against stub
// commands that record what they would do) and the unit (systemd-analyze
// verify, which must print nothing: only its ExecStart is pointed at the
// extracted binary, since nothing is installed in /usr/bin here). And the
// configuration file: flag > env > file, an unknown key refused with its
// line, --print-config never showing a secret. No root needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, ROOT, tempDir } from './lib.mjs';

// a make of our own, not the jobserver of a `make test` above us
function make(args) {
  const env = { ...process.env };
  for (const k of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES']) delete env[k];
  const r = spawnSync('make', ['--no-print-directory', ...args], { cwd: ROOT, env, encoding: 'utf8' });
  assert.equal(r.status, 0, `make ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  return { code: r.status, out: r.stdout || '', err: r.stderr || '' };
}

// starts bin (an installed aimaas) and resolves once it listens
function serve(bin, args, env = {}) {
  const proc = spawn(bin, ['serve', '--listen', '127.0.0.1:0', ...args],
    { env: { ...process.env, AIMAAS_CONFIG: '', AIMAAS_ADMIN_PASSWORD: 'admin-password-1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  const port = new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`did not start:\n${log}`)), 15000);
    const on = (d) => {
      log += d;
      const m = log.match(/listening on http:\/\/[^\s]+:(\d+)/);
      if (m) { clearTimeout(t); res(Number(m[1])); }
    };
    proc.stdout.on('data', on);
    proc.stderr.on('data', on);
    exited.then((r) => { clearTimeout(t); rej(new Error(`exited ${JSON.stringify(r)}:\n${log}`)); });
  });
  return { proc, port, exited, log: () => log };
}

// systemd-analyze verify on a unit whose ExecStart is pointed into root
function verifyUnit(unitPath, root, dir) {
  const which = run('sh', ['-c', 'command -v systemd-analyze']);
  if (which.code !== 0) return 'systemd-analyze not installed: skipped';
  const copy = join(dir, 'aimaas.service');
  writeFileSync(copy, readFileSync(unitPath, 'utf8').replace(/^ExecStart=(\S+)/m, (_, p) => `ExecStart=${root}${p}`));
  const r = run('systemd-analyze', ['verify', '--man=no', copy]);
  assert.equal(r.code, 0, r.out + r.err);
  assert.equal((r.out + r.err).trim(), '', `systemd-analyze verify complains:\n${r.out}${r.err}`);
  return 'verified';
}

function checkUnit(text, bindir) {
  const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
  for (const want of ['User=aimaas', 'Restart=on-failure', 'KillMode=process', 'EnvironmentFile=-/etc/aimaas/aimaas.env',
    'StateDirectory=aimaas', 'ReadWritePaths=/var/lib/aimaas', 'NoNewPrivileges=yes', 'ProtectSystem=strict',
    'ProtectHome=read-only', `ExecStart=${bindir}/aimaas serve`, 'WantedBy=multi-user.target']) {
    assert.ok(lines.includes(want), `the unit has ${want}`);
  }
  // GPUs, JITs and engines that outlive a restart need these off
  for (const banned of ['PrivateDevices', 'MemoryDenyWriteExecute', 'DevicePolicy', 'PrivateTmp', 'ProtectClock']) {
    assert.ok(!lines.some((l) => l.startsWith(`${banned}=`)), `the unit does not set ${banned}`);
  }
}

test('make install into a scratch root; the installed aimaas serves its console from share/aimaas/ui', { timeout: 60000 }, async () => {
  const dest = tempDir('aimaas-install-');
  make(['install-files', `DESTDIR=${dest}`, 'PREFIX=/usr']);
  const bin = join(dest, 'usr/bin/aimaas');
  for (const f of ['usr/bin/aimaas', 'usr/bin/aimaas-sim', 'usr/share/aimaas/ui/index.html', 'usr/share/doc/aimaas/operations.md',
    'usr/lib/systemd/system/aimaas.service', 'etc/aimaas/aimaas.conf', 'etc/aimaas/aimaas.env']) {
    assert.ok(existsSync(join(dest, f)), `${f} installed`);
  }
  assert.equal(statSync(join(dest, 'etc/aimaas/aimaas.env')).mode & 0o777, 0o600, 'the secrets file is 0600');
  assert.equal(statSync(bin).mode & 0o111, 0o111, 'the binary is executable');
  const unit = readFileSync(join(dest, 'usr/lib/systemd/system/aimaas.service'), 'utf8');
  checkUnit(unit, '/usr/bin');
  verifyUnit(join(dest, 'usr/lib/systemd/system/aimaas.service'), dest, dest);

  // an edited configuration survives a second install
  const conf = join(dest, 'etc/aimaas/aimaas.conf');
  writeFileSync(conf, `${readFileSync(conf, 'utf8')}log-level = warn\n`);
  make(['install-files', `DESTDIR=${dest}`, 'PREFIX=/usr']);
  assert.match(readFileSync(conf, 'utf8'), /log-level = warn/);

  // the shipped configuration, read by the installed binary
  const pc = run(bin, ['serve', '--print-config'], { env: { ...process.env, AIMAAS_CONFIG: conf } });
  assert.equal(pc.code, 0, pc.err);
  assert.match(pc.out, new RegExp(`^data-dir = /var/lib/aimaas +# file ${conf}:\\d+$`, 'm'));
  assert.match(pc.out, new RegExp(`^ui-dir = ${dest}/usr/share/aimaas/ui +# default$`, 'm'));

  const data = join(tempDir('aimaas-install-data-'), 'data');
  const s = serve(bin, ['--data-dir', data]);
  const port = await s.port;
  try {
    const index = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(index.status, 200);
    assert.equal(await index.text(), readFileSync(join(dest, 'usr/share/aimaas/ui/index.html'), 'utf8'));
    const h = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(h.status, 200);
    assert.match(s.log(), new RegExp(`web console: ${dest}/usr/share/aimaas/ui`));
    assert.equal(statSync(data).mode & 0o007, 0, 'the data dir is closed to other users');
  } finally {
    s.proc.kill('SIGTERM');
  }
  assert.equal((await s.exited).code, 0, s.log());
});

test('make deb: files, Depends, conffiles, maintainer scripts and the unit', { timeout: 90000 }, () => {
  if (run('sh', ['-c', 'command -v dpkg-deb && command -v fakeroot']).code !== 0) return; // not a Debian build machine
  const out = tempDir('aimaas-deb-');
  make(['deb-package', `DEB_OUT=${out}`]);
  const arch = run('dpkg', ['--print-architecture']).out.trim();
  const version = readFileSync(join(ROOT, 'src/am_server.h'), 'utf8').match(/#define AM_VERSION "([^"]+)"/)[1];
  const deb = join(out, `aimaas_${version}_${arch}.deb`);
  assert.ok(existsSync(deb), deb);

  const files = run('dpkg-deb', ['-c', deb]).out;
  for (const f of ['./usr/bin/aimaas', './usr/bin/aimaas-sim', './usr/share/aimaas/ui/index.html', './lib/systemd/system/aimaas.service',
    './etc/aimaas/aimaas.conf', './etc/aimaas/aimaas.env', './usr/share/doc/aimaas/operations.md']) {
    assert.match(files, new RegExp(` ${f.replaceAll('.', '\\.')}\\n`), `${f} in the package`);
  }
  assert.match(files, /^-rw------- root\/root .* \.\/etc\/aimaas\/aimaas\.env$/m, 'aimaas.env is root\'s, 0600');

  const field = (name) => run('dpkg-deb', ['-f', deb, name]).out.trim();
  assert.equal(field('Package'), 'aimaas');
  assert.equal(field('Version'), version);
  assert.equal(field('Architecture'), arch);
  const depends = field('Depends');
  // what `ldd build/aimaas` names, as Debian 12 / Ubuntu 22.04 packages
  for (const pkg of ['libc6', 'libevent-core-2.1-7', 'libevent-pthreads-2.1-7', 'libjansson4', 'libsodium23', 'libsqlite3-0',
    'libcurl4', 'libyaml-0-2', 'libssl3']) {
    assert.match(depends, new RegExp(`(^|, )${pkg}( |,|$)`), `Depends names ${pkg}: ${depends}`);
  }

  const ctl = join(out, 'control');
  assert.equal(run('dpkg-deb', ['-e', deb, ctl]).code, 0);
  assert.deepEqual(readFileSync(join(ctl, 'conffiles'), 'utf8').trim().split('\n').sort(),
    ['/etc/aimaas/aimaas.conf', '/etc/aimaas/aimaas.env']);
  for (const s of ['postinst', 'prerm', 'postrm']) {
    assert.equal(statSync(join(ctl, s)).mode & 0o755, 0o755, `${s} is executable`);
    const n = run('sh', ['-n', join(ctl, s)]);
    assert.equal(n.code, 0, `sh -n ${s}: ${n.err}`);
  }

  // postinst configure on a machine without the user and without systemd
  // running (a chroot): stubs record what it runs
  const stubs = join(out, 'stubs');
  const record = join(out, 'calls');
  mkdirSync(stubs);
  for (const [name, rc] of [['getent', 1], ['adduser', 0], ['useradd', 0], ['groupadd', 0], ['install', 0], ['chown', 0], ['chmod', 0],
    ['deb-systemd-helper', 1], ['deb-systemd-invoke', 0], ['systemctl', 0]]) {
    writeFileSync(join(stubs, name), `#!/bin/sh\necho "${name} $*" >>'${record}'\nexit ${rc}\n`);
    chmodSync(join(stubs, name), 0o755);
  }
  const env = { ...process.env, PATH: `${stubs}:/usr/bin:/bin` };
  const pi = run('sh', [join(ctl, 'postinst'), 'configure', ''], { env });
  assert.equal(pi.code, 0, pi.out + pi.err);
  const calls = readFileSync(record, 'utf8');
  assert.match(calls, /^adduser --system --group --home \/var\/lib\/aimaas --no-create-home --shell \/usr\/sbin\/nologin .*aimaas$/m);
  assert.match(calls, /^install -d -m 0700 -o aimaas -g aimaas \/var\/lib\/aimaas$/m);
  assert.match(calls, /^chmod 0600 \/etc\/aimaas\/aimaas\.env$/m);
  assert.match(calls, /^deb-systemd-helper enable aimaas\.service$/m);
  if (!existsSync('/run/systemd/system')) assert.doesNotMatch(calls, /^(systemctl|deb-systemd-invoke) /m, 'no systemd: nothing started');
  for (const [s, arg] of [['prerm', 'remove'], ['postrm', 'remove'], ['postrm', 'purge']]) {
    const r = run('sh', [join(ctl, s), arg], { env });
    assert.equal(r.code, 0, `${s} ${arg}: ${r.out}${r.err}`);
  }
  assert.doesNotMatch(readFileSync(record, 'utf8'), /var\/lib\/aimaas.*(rm|deluser)|^(rm|deluser) /m, 'purge keeps the data and the user');

  const root = join(out, 'root');
  assert.equal(run('dpkg-deb', ['-x', deb, root]).code, 0);
  checkUnit(readFileSync(join(root, 'lib/systemd/system/aimaas.service'), 'utf8'), '/usr/bin');
  verifyUnit(join(root, 'lib/systemd/system/aimaas.service'), root, out);
});

test('the configuration file: flag > env > file > default, refusals with the line, secrets never printed', { timeout: 30000 }, async () => {
  const dir = tempDir('aimaas-conf-');
  const conf = join(dir, 'aimaas.conf');
  writeFileSync(conf, '# test\nlisten = 127.0.0.1:0\nsession-ttl = 600\nmax-body = 4096\ngpu-interval = 700\n' +
    `data-dir = ${dir}/data\nmodel-root = ${dir}\n`);
  const pc = (args, env = {}) => run(BIN, ['serve', '--config', conf, '--print-config', ...args],
    { env: { ...process.env, AIMAAS_CONFIG: '', ...env } });
  const r = pc(['--session-ttl', '120', '--max-body', '2048'], { AIMAAS_MAX_BODY: '8192', AIMAAS_GPU_INTERVAL: '900', AIMAAS_ADMIN_PASSWORD: 'hunter2-secret', HF_TOKEN: 'hf_secret_token' });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^session-ttl = 120 +# flag --session-ttl$/m);      // flag > file
  assert.match(r.out, /^max-body = 2048 +# flag --max-body$/m);           // flag > env
  assert.match(r.out, /^gpu-interval = 900 +# env AIMAAS_GPU_INTERVAL$/m); // env > file
  assert.match(r.out, new RegExp(`^listen = 127.0.0.1:0 +# file ${conf}:2$`, 'm'));
  assert.match(r.out, /^idle-timeout = 75 +# default$/m);
  assert.match(r.out, /^# admin-password: set \(env AIMAAS_ADMIN_PASSWORD; secret, not shown\)$/m);
  assert.match(r.out, /^# hf-token: set \(env HF_TOKEN; secret, not shown\)$/m);
  assert.match(r.out, /^# metrics-token: unset/m);
  assert.doesNotMatch(r.out + r.err, /hunter2|hf_secret/);
  assert.ok(!existsSync(join(dir, 'data')), '--print-config creates nothing');

  // unknown keys and bad values: the file, the line and the key
  writeFileSync(join(dir, 'bad.conf'), 'listen = 127.0.0.1:0\n\nlisten-port = 8080\n');
  let b = run(BIN, ['serve', '--config', join(dir, 'bad.conf')], { env: { ...process.env, AIMAAS_CONFIG: '' } });
  assert.notEqual(b.code, 0);
  assert.match(b.err, new RegExp(`${dir}/bad.conf: line 3: unknown key 'listen-port'`));
  writeFileSync(join(dir, 'bad.conf'), 'session-ttl = soon\n');
  b = run(BIN, ['serve'], { env: { ...process.env, AIMAAS_CONFIG: join(dir, 'bad.conf') } });
  assert.match(b.err, /bad\.conf: line 1: session-ttl must be 60 to \d+ seconds \(got 'soon'\)/);
  writeFileSync(join(dir, 'bad.conf'), 'admin-password = hunter2\n');
  b = run(BIN, ['serve', '--config', join(dir, 'bad.conf')], { env: { ...process.env, AIMAAS_CONFIG: '' } });
  assert.match(b.err, /line 1: 'admin-password' is a secret: set AIMAAS_ADMIN_PASSWORD in the environment/);
  assert.doesNotMatch(b.err, /hunter2/);

  // and a real start from the file alone: its address, its data dir
  const s = serve(BIN, ['--config', conf]);
  const port = await s.port;
  try {
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    assert.ok(existsSync(join(dir, 'data/aimaas.db')), 'the data dir the file names');
  } finally {
    s.proc.kill('SIGTERM');
  }
  assert.equal((await s.exited).code, 0, s.log());
});
