// Throwaway PKI for the fake kube-apiserver: a CA, a server certificate for
// 127.0.0.1/localhost and client certificates (CN = user, O = groups), made
// with the openssl CLI into a temporary folder. EC P-256 keys: fast to make.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function ossl(dir, args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

function keyAndCsr(dir, base, subj) {
  ossl(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', subj]);
}

function sign(dir, base, ext) {
  writeFileSync(join(dir, `${base}.ext`), ext);
  ossl(dir, ['x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', `${base}.crt`, '-days', '2', '-sha256', '-extfile', `${base}.ext`]);
}

// Subject components must not carry '/', '=' or ',' (kept simple on purpose).
function rdn(s) { return String(s).replace(/[/=,\\]/g, '_'); }

export function makePki() {
  const dir = mkdtempSync(join(tmpdir(), 'kube-fake-pki-'));
  ossl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=fake-kube-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature']);
  keyAndCsr(dir, 'server', '/CN=kube-apiserver');
  sign(dir, 'server', 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' +
    'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\n');
  const read = (f) => readFileSync(join(dir, f), 'utf8');
  let n = 0;
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    ca: read('ca.crt'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    // A client certificate for user (CN) in groups (O, one per group).
    client(user, groups = []) {
      const base = `client${n++}`;
      keyAndCsr(dir, base, `/CN=${rdn(user)}${groups.map((g) => `/O=${rdn(g)}`).join('')}`);
      sign(dir, base, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
      return { cert: read(`${base}.crt`), key: read(`${base}.key`), certFile: join(dir, `${base}.crt`), keyFile: join(dir, `${base}.key`) };
    },
    remove() { rmSync(dir, { recursive: true, force: true }); },
  };
}
