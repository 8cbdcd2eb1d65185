import { createI18n } from 'vue-i18n';
import zh from './zh-CN.js';
import en from './en.js';

// The browser's language first, then what the user chose (remembered).
const saved = localStorage.getItem('aimaas.lang');
const browser = (navigator.language || 'zh-CN').toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';

export const i18n = createI18n({
  legacy: false,
  locale: saved || browser,
  fallbackLocale: 'en',
  messages: { 'zh-CN': zh, en },
});

export function setLanguage(lang) {
  i18n.global.locale.value = lang;
  localStorage.setItem('aimaas.lang', lang);
  document.documentElement.lang = lang;
}
