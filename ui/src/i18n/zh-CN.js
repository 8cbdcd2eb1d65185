export default {
  app: { name: 'aimaas', tagline: '私有化 AI 模型服务平台' },
  login: { title: '登录', username: '用户名', password: '密码', submit: '登录', failed: '登录失败' },
  menu: { dashboard: '概览', models: '模型', deployments: '模型部署', logout: '退出登录', language: '语言' },
  common: { delete: '删除', cancel: '取消', next: '下一步', back: '上一步' },
  models: {
    title: '模型', register: '注册模型', empty: '还没有模型：从模型目录注册一个文件夹。',
    arch: '架构', params: '参数量', context: '上下文', size: '权重大小', path: '模型文件夹或 .gguf 文件',
    name_optional: '名称（可选，默认为文件夹名）', found_in: '{root} 中的内容（点击选择）：',
    registered: '已注册 {name}', confirm_delete: '删除模型 {name}？文件会保留。',
  },
  deploy: {
    title: '模型部署', new: '部署模型', engine: '推理引擎', resources: 'GPU 资源', check: '检查',
    served_name: '调用时使用的模型名', gpus_per_replica: '每个副本的 GPU 数', replicas: '副本数',
    max_model_len: '上下文长度（0：模型默认，最多 32k）', deploy: '部署', replica: '副本',
    verdict: '每块 GPU 需要 {need}；上下文 {len}；KV 缓存可容纳 {n} 条满长度序列。',
    reason: '原因', restart: '重启', start: '启动', stop: '停止', endpoint: '调用地址', log: '日志',
    search: '过滤日志', pause: '暂停', download: '下载', confirm_delete: '删除部署 {name}？',
  },
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
