import { createApp } from 'vue';
import ElementPlus from 'element-plus';
import 'element-plus/dist/index.css';
import './style.css';
import App from './App.vue';
import { router } from './router.js';
import { elementConfig, i18n } from './i18n/index.js';

createApp(App).use(router).use(i18n).use(ElementPlus, elementConfig).mount('#app');
