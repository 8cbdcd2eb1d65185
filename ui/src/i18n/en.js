export default {
  app: { name: 'aimaas', tagline: 'Private AI models as a service' },
  login: { title: 'Sign in', username: 'Username', password: 'Password', submit: 'Sign in', failed: 'Sign-in failed' },
  menu: { dashboard: 'Dashboard', logout: 'Sign out', language: 'Language' },
  dash: {
    gpus: 'GPUs', nodes: 'Nodes', deployments: 'Deployments', jobs: 'Fine-tuning jobs', tasks: 'Recent tasks',
    used_ours: 'aimaas', used_other: 'others', free: 'free', util: 'Utilisation', temp: 'Temperature',
    none_gpus: 'No GPUs found. Install the NVIDIA driver, or start aimaas with --sim-gpus for a demo.',
    none_deployments: 'Nothing deployed yet: register a model, then deploy it.',
    none_jobs: 'No fine-tuning jobs yet: upload a dataset, then start a job.',
    running: 'running', state: 'State', name: 'Name', model: 'Model', kind: 'Kind', when: 'When', target: 'Target',
    progress: 'Progress', simulated: 'simulated',
  },
};
