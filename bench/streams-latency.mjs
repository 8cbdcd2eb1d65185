// Time to first token and inter-token gaps of streamed completions, direct
// to the engine, through nginx and through aimaas.
const [, , ePort, eKey, nPort, aPort, aKey] = process.argv;
const paths = { direct: [ePort, eKey], nginx: [nPort, 'none'], aimaas: [aPort, aKey] };
const body = JSON.stringify({ model: 'bench', prompt: 'x', max_tokens: 16, stream: true });
for (const [name, [port, key]] of Object.entries(paths)) {
  const ttft = [], gaps = [];
  for (let i = 0; i < 20; i++) {
    const t0 = process.hrtime.bigint();
    const r = await fetch(`http://127.0.0.1:${port}/v1/completions`, { method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
    let last = null, buf = '';
    const dec = new TextDecoder();
    for await (const part of r.body) {
      buf += dec.decode(part);
      let k;
      while ((k = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, k);
        buf = buf.slice(k + 2);
        if (!ev.startsWith('data: {')) continue;
        const t = process.hrtime.bigint();
        if (last === null) ttft.push(Number(t - t0) / 1e6); else gaps.push(Number(t - last) / 1e6);
        last = t;
      }
    }
  }
  const med = (a) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)].toFixed(3);
  console.log(`${name.padEnd(7)} TTFT median ${med(ttft)} ms, inter-token gap median ${med(gaps)} ms`);
}
