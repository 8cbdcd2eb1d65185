// Opens N streaming completions at once against a server and reports how
// many are being streamed concurrently (the server's own running gauge and
// the clients that have received their first token while all are open).
import net from 'node:net';

const [, , base, nStr] = process.argv;
const n = Number(nStr);
const url = new URL(base);
const body = JSON.stringify({ model: 'bench', prompt: 'x', max_tokens: 20, stream: true });
const req = `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
let firstToken = 0;
let done = 0;
let failed = 0;
const sockets = [];
const t0 = Date.now();
for (let i = 0; i < n; i++) {
  const s = net.connect(Number(url.port), url.hostname);
  let got = false;
  let buf = '';
  s.on('connect', () => s.write(req));
  s.on('data', (d) => {
    buf += d;
    if (!got && buf.includes('data: {')) { got = true; firstToken++; }
    if (buf.includes('data: [DONE]')) { done++; s.destroy(); }
    if (buf.length > 8192) buf = buf.slice(-64);
  });
  s.on('error', () => { failed++; });
  sockets.push(s);
}
const deadline = Date.now() + 60000;
while (firstToken + failed < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
const openMs = Date.now() - t0;
const m = await fetch(`${base}/metrics`).then((r) => r.text());
const running = Number((m.match(/vllm:num_requests_running\{[^}]*\} (\d+)/) || [])[1]);
console.log(`${firstToken} of ${n} streams had their first token after ${openMs} ms, ${failed} failed; ` +
  `the server reports ${running} running at once`);
for (const s of sockets) s.destroy();
process.exit(firstToken === n && running >= n ? 0 : 1);
