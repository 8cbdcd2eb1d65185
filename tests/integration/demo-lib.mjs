// `make demo` (scripts/demo.mjs) for the tests, on the build under test
// (AIMAAS_BIN, AIMAAS_SIM_BIN), with fast simulated engines and trainer.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, BIN, SIM_BIN } from './lib.mjs';

const children = [];
// Kills what is left (for a test's after()).
export function stopDemos() { for (const c of children) if (c.exitCode === null) c.kill('SIGKILL'); }

// Starts the demo; resolves with the child once it printed its banner.
export function startDemo(port, dataDir) {
  const child = spawn(process.execPath, [join(ROOT, 'scripts', 'demo.mjs'), '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir],
    { env: { ...process.env, AIMAAS_SIM_ITL_MS: '1', AIMAAS_SIM_STEP_MS: '5', AIMAAS_BIN: BIN, AIMAAS_SIM_BIN: SIM_BIN }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`demo not ready in 60 s:\n${out}`)), 60000);
    const take = (d) => {
      out += d;
      if (out.includes('aimaas demo (')) { clearTimeout(t); resolve({ child, out: () => out }); }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('exit', (code) => { clearTimeout(t); reject(new Error(`demo exited ${code}:\n${out}`)); });
  });
}

// Stops a demo as Ctrl-C would; resolves with its exit code.
export function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.removeAllListeners('exit');
    child.on('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

