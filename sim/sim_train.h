/* sim_train: `aimaas-sim train CONFIG` and `aimaas-sim export CONFIG`,
 * imitating `llamafactory-cli train|export` (shared/contracts/llamafactory.md):
 * the same config keys and refusals, steps computed from the real dataset,
 * trainer_log.jsonl, checkpoints, the files a finished run leaves, SIGABRT
 * handling under LlamaBoard, resuming. Knobs come from the environment,
 * since aimaas runs it exactly as it runs llamafactory-cli:
 *   AIMAAS_SIM_STEP_MS        time per optimiser step (default 50)
 *   AIMAAS_SIM_FAIL_AT_STEP   fail with CUDA out of memory at this step
 *   AIMAAS_SIM_FAIL_MESSAGE   the failure's text instead */
#ifndef SIM_TRAIN_H
#define SIM_TRAIN_H

int sim_train_main(int argc, char **argv);
int sim_export_main(int argc, char **argv);

#endif
