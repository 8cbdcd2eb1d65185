export default {
  app: { name: 'aimaas', tagline: '私有化 AI 模型服务平台' },
  login: { title: '登录', username: '用户名', password: '密码', submit: '登录', failed: '登录失败' },
  menu: { dashboard: '概览', logout: '退出登录', language: '语言' },
  dash: {
    gpus: 'GPU', nodes: '节点', deployments: '模型部署', jobs: '微调任务', tasks: '最近操作',
    used_ours: 'aimaas 占用', used_other: '其他进程', free: '空闲', util: '利用率', temp: '温度',
    none_gpus: '未发现 GPU。请安装 NVIDIA 驱动，或以 --sim-gpus 启动 aimaas 进行演示。',
    none_deployments: '还没有部署：先注册模型，再部署。',
    none_jobs: '还没有微调任务：先上传数据集，再创建任务。',
    running: '运行中', state: '状态', name: '名称', model: '模型', kind: '类型', when: '时间', target: '对象',
    progress: '进度', simulated: '模拟',
  },
};
