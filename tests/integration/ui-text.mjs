// The browser tests' shared check of the console's text.
// No English in a Chinese page: every visible word of Latin letters in the page's text is
// a name, a unit, a product or an acronym of the allow-list below, or sits in an element
// marked as an identifier (monospace code, `.raw` names and tokens with their `.raw-hint`,
// `translate="no"`). The server's own words (errors, and `.srv`: stored reasons and task
// messages, answered in the asker's language) must be Chinese sentences, which may quote
// identifiers or an engine's own English line. Words with a digit (H100,
// 7.6B, v1, K8s, BF16) are identifiers or units. The raw token a word translates stays in
// a tooltip (title), which is not page text.
export const ALLOW = new Set(['aimaas', 'AI', 'GPU', 'GPUs', 'CPU', 'API', 'GiB', 'MiB', 'KiB', 'MB', 's', 'ms', 'h', 'tok', 'token', 'LoRA', 'QLoRA', 'KV', 'ID',
  'NVIDIA', 'ModelScope', 'Hugging', 'Face', 'vLLM', 'SGLang', 'llama.cpp', 'llama-server', 'aimaas-sim', 'Dify', 'FastGPT', 'RAGFlow', 'Python', 'openai', 'curl',
  'Kubernetes', 'PVC', 'ReadWriteMany', 'NFS', 'Pod', 'ServiceAccount', 'kubeconfig', 'taints', 'PID', 'JSON', 'JSONL', 'CSV', 'GGUF',
  'safetensors', 'Enter', 'Shift', 'PATH', 'URL', 'CUDA', 'AWQ', 'GPTQ', 'FP', 'SFT', 'DPO', 'PT', 'sk', 'Hub', 'MoE', 'Kubernetes',
  'English', 'GeForce', 'RTX', 'Ti', 'HBM', 'LLaMA-Factory']);
// The English words of the page's visible text that are none of those (with
// where they stand); extra: more allowed words (names a test gives).
export async function englishLeaks(page, extra = []) {
  return page.evaluate((allow) => {
    const skip = 'code, pre, kbd, .raw, .raw-hint, [translate="no"], textarea, input, script, style, .cmd, .log';
    // the server's words come in the console's language (Accept-Language): a Chinese
    // sentence, which may quote identifiers (a field, RBAC verbs, a path)
    const errors = '.el-message--error, .el-alert--error, .el-form-item__error, .srv';
    const out = new Set();
    const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n; (n = walk.nextNode());) {
      const el = n.parentElement;
      if (!el || el.closest(skip) || !el.getClientRects().length || getComputedStyle(el).visibility === 'hidden') continue;
      const err = el.closest(errors);
      if (err) {
        if (err.textContent.trim() && !/[\u4e00-\u9fff]/.test(err.textContent)) out.add(`server words not in Chinese: "${err.textContent.trim().slice(0, 90)}"`);
        continue;
      }
      for (const w of n.textContent.match(/[A-Za-z0-9][A-Za-z0-9_.\-]*/g) || []) {
        const word = w.replace(/[.\-]+$/, '');
        if (/\d/.test(word) || !/[A-Za-z]/.test(word) || allow.includes(word)) continue;
        out.add(`${word} in "${n.textContent.trim().slice(0, 70)}"`);
      }
    }
    return [...out];
  }, [...ALLOW, ...extra]);
}
