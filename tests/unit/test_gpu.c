/* Unit tests: GPU discovery against real H100 readings. */
#include <stdlib.h>
#include <unistd.h>

#include "am_test.h"
#include "gpu/am_gpu.h"
#include "gpu/am_nvml.h"
#include "gpu/am_simgpu.h"
#include "gpu/am_smi.h"

#define MIB (1024ull * 1024ull)

static void smi_csv_of_a_real_h100(void)
{
	char *csv = am_test_read_file(FIXTURE("gpu/h100/query-gpu.csv"));
	char *apps = am_test_read_file(FIXTURE("gpu/h100/compute-apps.csv"));
	CHECK(csv && apps);
	if (!csv || !apps)
		return;
	struct am_gpu_info g[4];
	CHECK_INT(am_smi_parse_gpus(csv, g, 4), 1);
	CHECK_INT(g[0].index, 0);
	CHECK_STR(g[0].uuid, "GPU-3931de48-4998-5a83-a45c-ef6d245cfef1");
	CHECK_STR(g[0].name, "NVIDIA H100 80GB HBM3");
	CHECK_STR(g[0].pci_bus_id, "00000000:00:06.0");
	CHECK(g[0].mem_total == 81559 * MIB);
	CHECK(g[0].mem_used == 0);
	CHECK(g[0].mem_free == 81079 * MIB);
	CHECK_INT(g[0].util_gpu, 0);
	CHECK_INT(g[0].temperature, 49);
	CHECK_INT(g[0].cc_major, 9); /* from the name: this query had no compute_cap */
	CHECK_INT(am_smi_parse_apps(apps, g, 1), 0);
	CHECK_INT(g[0].nprocs, 1);
	CHECK_INT(g[0].procs[0].pid, 446);
	CHECK(g[0].procs[0].used_bytes == 6754 * MIB);
	CHECK_STR(g[0].procs[0].name, "python3");
	CHECK_INT(am_smi_parse_gpus("not a table\n", g, 4), -1);
	CHECK_INT(am_smi_parse_gpus(
			  "index, uuid, name, memory.total [MiB], compute_cap\n3, GPU-x, Tesla T4, 15360 MiB, 7.5\n\n", g, 4),
		  1);
	CHECK_INT(g[0].index, 3);
	CHECK_INT(g[0].cc_major, 7);
	CHECK_INT(g[0].cc_minor, 5);
	CHECK_INT(g[0].util_gpu, -1);
	free(csv);
	free(apps);
}

static void smi_run_against_the_fixture_script(void)
{
	struct am_gpu_info g[4];
	char err[256];
	CHECK_INT(am_smi_sample(FIXTURE("fake-nvidia-smi"), g, 4, err, sizeof err), 1);
	CHECK_INT(g[0].nprocs, 1);
	setenv("FAKE_SMI_OLD", "1", 1); /* an old driver without compute_cap */
	CHECK_INT(am_smi_sample(FIXTURE("fake-nvidia-smi"), g, 4, err, sizeof err), 1);
	unsetenv("FAKE_SMI_OLD");
	CHECK_INT(am_smi_sample("/nonexistent/nvidia-smi", g, 4, err, sizeof err), -1);
}

static void nvml_through_dlopen(void)
{
	const char *lib = "build/fake-nvml/libnvidia-ml.so.1";
	if (access(lib, R_OK) != 0) {
		fprintf(stderr, "    (skipped: %s not built)\n", lib);
		return;
	}
	struct am_nvml *n = NULL;
	char err[256];
	CHECK_INT(am_nvml_open(lib, &n, err, sizeof err), 0);
	if (!n)
		return;
	CHECK_STR(am_nvml_driver_version(n), "580.159.04");
	struct am_gpu_info g[4];
	CHECK_INT(am_nvml_sample(n, g, 4), 1);
	CHECK(g[0].mem_total == 85520809984ull);
	CHECK(g[0].mem_free == 77926170624ull);
	CHECK_INT(g[0].temperature, 49);
	CHECK_INT(g[0].cc_major, 9);
	CHECK_INT(g[0].nprocs, 1);
	CHECK_INT(g[0].procs[0].pid, 446);
	CHECK(g[0].procs[0].used_bytes == 7082082304ull);
	am_nvml_close(n);
	CHECK_INT(am_nvml_open("/nonexistent/libnvidia-ml.so.1", &n, err, sizeof err), -1);
	setenv("FAKE_NVML_FAIL_INIT", "1", 1);
	CHECK_INT(am_nvml_open(lib, &n, err, sizeof err), -1);
	CHECK(strstr(err, "Driver Not Loaded") != NULL);
	unsetenv("FAKE_NVML_FAIL_INIT");
}

static void simulated_specs(void)
{
	struct am_gpu_info g[AM_GPU_MAX];
	int n = 0;
	char err[256];
	CHECK_INT(am_simgpu_parse("4x11GiB:NVIDIA GeForce RTX 2080 Ti", g, &n, AM_GPU_MAX, err, sizeof err), 0);
	CHECK_INT(n, 4);
	CHECK_STR(g[3].uuid, "GPU-sim-3");
	CHECK(g[0].mem_total == 11ull * 1024 * MIB);
	CHECK_INT(g[0].cc_major, 7);
	CHECK_INT(g[0].cc_minor, 5);
	CHECK(!am_gpu_has_bf16(&g[0]));
	CHECK(g[0].simulated);
	CHECK_INT(am_simgpu_parse("2x80GB:NVIDIA A100-SXM4-80GB", g, &n, AM_GPU_MAX, err, sizeof err), 0);
	CHECK_INT(n, 6);
	CHECK(g[4].mem_total == 80000000000ull);
	CHECK(am_gpu_has_bf16(&g[4]));
	CHECK_INT(am_simgpu_parse("1x24GiB:Custom Card@7.0", g, &n, AM_GPU_MAX, err, sizeof err), 0);
	CHECK_STR(g[6].name, "Custom Card");
	CHECK_INT(g[6].cc_major, 7);
	const char *bad[] = { "", "x11GiB", "0x11GiB", "1025x1GiB", "2x", "2x11XB", "2x1MiB", "2x11GiB:", "2x11GiB@7" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int before = n;
		CHECK_INT(am_simgpu_parse(bad[i], g, &n, AM_GPU_MAX, err, sizeof err), -1);
		CHECK_INT(n, before);
	}
}

/* NODE/ puts cards on a simulated node; their indices count per node */
static void simulated_nodes(void)
{
	static struct am_gpu_info g[1100];
	int n = 0;
	char err[256];
	CHECK_INT(am_simgpu_parse("2x24GiB:NVIDIA L4", g, &n, 1100, err, sizeof err), 0);
	CHECK_INT(am_simgpu_parse("node-b/8x80GiB:NVIDIA H100 80GB HBM3", g, &n, 1100, err, sizeof err), 0);
	CHECK_INT(n, 10);
	CHECK_STR(g[0].node, "");
	CHECK_STR(g[2].node, "node-b");
	CHECK_INT(g[2].index, 0);
	CHECK_INT(g[9].index, 7);
	CHECK_STR(g[9].uuid, "GPU-sim-9");
	CHECK_STR(g[9].name, "NVIDIA H100 80GB HBM3");
	CHECK_INT(g[9].cc_major, 9);
	/* a slash in the name is part of the name */
	CHECK_INT(am_simgpu_parse("local/1x16GiB:Card A/B@7.0", g, &n, 1100, err, sizeof err), 0);
	CHECK_STR(g[10].node, "");
	CHECK_STR(g[10].name, "Card A/B");
	CHECK_INT(g[10].index, 2);
	CHECK_INT(am_simgpu_parse("1x16GiB:Card A/B", g, &n, 1100, err, sizeof err), 0);
	CHECK_STR(g[11].node, "");
	CHECK_STR(g[11].name, "Card A/B");
	/* a thousand cards on 16 nodes */
	for (int k = 0; k < 16; k++) {
		char spec[64];
		snprintf(spec, sizeof spec, "n%02d/63x80GiB:NVIDIA H100", k);
		CHECK_INT(am_simgpu_parse(spec, g, &n, 1100, err, sizeof err), 0);
	}
	CHECK_INT(n, 12 + 1008);
	CHECK_STR(g[n - 1].node, "n15");
	CHECK_INT(g[n - 1].index, 62);
	const char *bad[] = { "/2x1GiB", "no de/2x1GiB", "a:b/2x1GiB", "node-b/", "node-b/x1GiB" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int before = n;
		CHECK_INT(am_simgpu_parse(bad[i], g, &n, 1100, err, sizeof err), -1);
		CHECK_INT(n, before);
	}
}

static void compute_capability_names(void)
{
	int ma = 0, mi = 0;
	CHECK_INT(am_gpu_cc_from_name("NVIDIA A10", &ma, &mi), 0);
	CHECK_INT(ma * 10 + mi, 86);
	CHECK_INT(am_gpu_cc_from_name("NVIDIA A100-PCIE-40GB", &ma, &mi), 0);
	CHECK_INT(ma * 10 + mi, 80);
	CHECK_INT(am_gpu_cc_from_name("Tesla V100-SXM2-32GB", &ma, &mi), 0);
	CHECK_INT(ma * 10 + mi, 70);
	CHECK_INT(am_gpu_cc_from_name("Tesla P100-PCIE-16GB", &ma, &mi), 0);
	CHECK_INT(ma * 10 + mi, 60);
	CHECK_INT(am_gpu_cc_from_name("NVIDIA GeForce RTX 4090", &ma, &mi), 0);
	CHECK_INT(ma * 10 + mi, 89);
	CHECK_INT(am_gpu_cc_from_name("Mystery 9000", &ma, &mi), -1);
}

void suite_gpu(void)
{
	RUN(smi_csv_of_a_real_h100);
	RUN(smi_run_against_the_fixture_script);
	RUN(nvml_through_dlopen);
	RUN(simulated_specs);
	RUN(simulated_nodes);
	RUN(compute_capability_names);
}
