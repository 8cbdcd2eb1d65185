import { reactive } from 'vue';
import { createI18n } from 'vue-i18n';
import elZh from 'element-plus/es/locale/lang/zh-cn.mjs';
import elEn from 'element-plus/es/locale/lang/en.mjs';
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

// Element Plus's own words ("请选择", "暂无数据", "共 31 条", the message
// boxes' buttons) follow the same language: this object is the app's global
// Element Plus config (app.use(ElementPlus, elementConfig)), so message boxes,
// which are created outside the component tree, get it too.
const elLocale = (lang) => (lang === 'zh-CN' ? elZh : elEn);
export const elementConfig = reactive({ locale: elLocale(i18n.global.locale.value) });
document.documentElement.lang = i18n.global.locale.value;

export function setLanguage(lang) {
  i18n.global.locale.value = lang;
  elementConfig.locale = elLocale(lang);
  localStorage.setItem('aimaas.lang', lang);
  document.documentElement.lang = lang;
}
