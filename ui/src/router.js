import { createRouter, createWebHistory } from 'vue-router';
import { session } from './api.js';
import Login from './pages/Login.vue';
import Layout from './pages/Layout.vue';

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/login', component: Login, meta: { public: true } },
    { path: '/', component: Layout, children: [
      { path: '', component: () => import('./pages/Dashboard.vue') },
      { path: 'models', component: () => import('./pages/Models.vue') },
      { path: 'market', component: () => import('./pages/Market.vue') },
      // a deployment's or a job's page is the list with its drawer open: /deployments/7, /finetune/jobs/3
      { path: 'deployments/:id?', component: () => import('./pages/Deployments.vue') },
      { path: 'finetune/:jobs(jobs)?/:id?', component: () => import('./pages/FineTune.vue') },
      { path: 'playground', component: () => import('./pages/Playground.vue') },
      { path: 'resources', component: () => import('./pages/Resources.vue') },
      { path: 'usage', component: () => import('./pages/Usage.vue') },
      { path: 'tasks', component: () => import('./pages/Tasks.vue') },
      { path: 'users', component: () => import('./pages/Users.vue'), meta: { admin: true } },
      { path: 'engines', component: () => import('./pages/Engines.vue'), meta: { admin: true } },
      { path: 'keys', component: () => import('./pages/Keys.vue') },
    ] },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
});

// Every page but the login needs a session; the server says whether the
// cookie is still good.
router.beforeEach(async (to) => {
  if (to.meta.public) return true;
  if (!session.user) await session.load();
  if (!session.user) return { path: '/login', query: { next: to.fullPath } };
  return to.meta.admin && session.user.role !== 'admin' ? { path: '/' } : true;
});
