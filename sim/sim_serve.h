/* sim_serve: `aimaas-sim serve MODEL [flags]`, imitating `vllm serve` closely
 * enough to test, demonstrate and load-test aimaas without a GPU: vLLM's flag
 * names, start-up (port bound at once, /health 503 until ready), log lines,
 * endpoints and their JSON shapes, SSE streams, errors, concurrency limits and
 * metrics. Simulation knobs are all prefixed --sim-. */
#ifndef SIM_SERVE_H
#define SIM_SERVE_H

/* Runs the server until SIGTERM/SIGINT; returns the process exit code. */
int sim_serve_main(int argc, char **argv);

#endif
