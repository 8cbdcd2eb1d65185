/* aimaas-sim: a simulator of vLLM's server (`serve`) and LLaMA-Factory's
 * trainer (`train`, `export`), so aimaas can be tested, demonstrated and
 * load-tested without GPUs. It is a tool of the project, never a stand-in
 * for a feature of the platform: aimaas drives it exactly as the real engines. */
#include <stdio.h>
#include <string.h>

#include "sim_opts.h"
#include "sim_serve.h"
#include "sim_train.h"

static const char usage[] =
	"aimaas-sim: a simulator of vLLM and LLaMA-Factory for tests and demos (no model is loaded)\n"
	"\n"
	"usage:\n"
	"  aimaas-sim serve MODEL [vLLM flags] [--sim-* flags]   like `vllm serve`\n"
	"  aimaas-sim train CONFIG [key=value ...]               like `llamafactory-cli train`\n"
	"  aimaas-sim export CONFIG [key=value ...]              like `llamafactory-cli export`\n"
	"  aimaas-sim version\n"
	"\n"
	"Run 'aimaas-sim serve --help' for the server's flags.\n";

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "serve")) {
		for (int i = 2; i < argc; i++)
			if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
				sim_opts_usage();
				return 0;
			}
		return sim_serve_main(argc - 2, argv + 2);
	}
	if (!strcmp(argv[1], "train"))
		return sim_train_main(argc - 2, argv + 2);
	if (!strcmp(argv[1], "export"))
		return sim_export_main(argc - 2, argv + 2);
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		puts("aimaas-sim 0.1.0 (imitates vLLM 0.11 and LLaMA-Factory 0.9)");
		return 0;
	}
	fprintf(stderr, "aimaas-sim: unknown command '%s'\n\n%s", argv[1], usage);
	return 2;
}
