// The server's tokens (states, kinds, task kinds, parameter names) in the
// reader's words. An unknown token is shown as it is, so a new state on the
// server never shows a blank. The raw token stays at hand for engineers: in a
// tooltip (title) or a small grey `.raw` hint beside the word.
import { useI18n } from 'vue-i18n';

const key = (s) => String(s ?? '').replace(/[^a-z0-9_]/gi, '_').toLowerCase();

export function useTerms() {
  const { t, te } = useI18n();
  const word = (section) => (s) => (s == null || s === '' ? '—' : te(`${section}.${key(s)}`) ? t(`${section}.${key(s)}`) : String(s));
  return {
    state: word('st'), // running, failed, backoff...
    kind: word('kind'), // llm, vlm, embedding, rerank, adapter
    task: word('tk'), // auth.login, deployment.idle...
    param: word('param'), // max_num_seqs, learning_rate...
    method: word('method'), // lora, qlora, full, freeze
    stage: word('stage'), // sft, dpo, pt
    placement: word('placement'), // binpack, spread
    known: (section, s) => te(`${section}.${key(s)}`),
  };
}
