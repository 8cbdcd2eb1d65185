export default {
  app: { name: 'aimaas', tagline: 'Private AI models as a service' },
  login: { title: 'Sign in', username: 'Username', password: 'Password', submit: 'Sign in', failed: 'Sign-in failed' },
  menu: { dashboard: 'Dashboard', models: 'Models', deployments: 'Deployments', logout: 'Sign out', language: 'Language' },
  common: { delete: 'Delete', cancel: 'Cancel', next: 'Next', back: 'Back' },
  models: {
    title: 'Models', register: 'Register a model', empty: 'No models yet: register a folder from a model root.',
    arch: 'Architecture', params: 'Parameters', context: 'Context', size: 'Weights', path: 'Folder or .gguf file',
    name_optional: 'Name (optional: the folder name)', found_in: 'In {root} (click to choose):',
    registered: 'Registered {name}', confirm_delete: 'Delete model {name}? Its files stay.',
  },
  deploy: {
    title: 'Deployments', new: 'Deploy a model', engine: 'Engine', resources: 'GPUs', check: 'Check',
    served_name: 'Name clients use as "model"', gpus_per_replica: 'GPUs per replica', replicas: 'Replicas',
    max_model_len: 'Context length (0: the model\'s, at most 32k)', deploy: 'Deploy', replica: 'Replica',
    verdict: 'Needs {need} per GPU; context {len}; the KV cache holds {n} full-length sequences.',
    reason: 'Reason', restart: 'Restart', start: 'Start', stop: 'Stop', endpoint: 'Endpoint', log: 'Log',
    search: 'Filter lines', pause: 'Pause', download: 'Download', confirm_delete: 'Delete deployment {name}?',
  },
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
