# aimaas: `make` builds, `make run` starts the platform, `make test` runs every test.
CC ?= cc
PKGS := libevent_core libevent_pthreads jansson libsodium sqlite3 libcurl yaml-0.1 libcrypto liburing
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g $(WARN) -Isrc -DAM_COMMIT='"$(COMMIT)"'
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldl -lpthread -lm
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

SRC := $(shell find src -name '*.c' | sort)
LIB_SRC := $(filter-out src/main.c,$(SRC))
UNIT_SRC := $(shell find tests/unit -name '*.c' | sort)
SIM_SRC := $(shell find sim -name '*.c' | sort)

# build/rel: optimised; build/asan: AddressSanitizer + UBSan
REL_OBJ := $(LIB_SRC:%.c=build/rel/%.o)
ASAN_OBJ := $(LIB_SRC:%.c=build/asan/%.o)
SIM_REL_OBJ := $(SIM_SRC:%.c=build/rel/%.o)
SIM_ASAN_OBJ := $(SIM_SRC:%.c=build/asan/%.o)

.PHONY: all asan deps run demo test test-k8s unit lint clean fuzz ui install install-files deb deb-package
all: build/aimaas build/aimaas-sim build/ui/index.html

# The web console (ui/: Vue 3 + Vite), built into build/ui, which aimaas
# serves at / (installed: share/aimaas/ui beside the binary).
UI_SRC := $(shell find ui/src -type f 2>/dev/null) ui/index.html ui/vite.config.js ui/package.json ui/package-lock.json
build/ui/index.html: $(UI_SRC)
	@echo "  VITE    build/ui"
	@[ -d ui/node_modules ] && [ ! ui/package-lock.json -nt ui/node_modules/.package-lock.json ] || \
		(cd ui && npm ci --no-audit --no-fund --loglevel=error)
	@cd ui && npx vite build --logLevel warn
	@find build/ui -type f \( -name '*.js' -o -name '*.css' -o -name '*.html' -o -name '*.svg' \) -exec gzip -9 -k -f {} +
ui: build/ui/index.html

deps:
	@scripts/install-deps.sh

build/rel/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(BASE_CFLAGS) -O2 $(PKG_CFLAGS) -MMD -MP -c $< -o $@

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC asan $<"
	@$(CC) $(BASE_CFLAGS) -O1 $(SAN) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

# the catalog is built into the binary (.incbin: the compiler does not list it)
build/rel/src/hub/hub_catalog_data.o build/asan/src/hub/hub_catalog_data.o: catalog/models.json

build/aimaas: build/rel/src/main.o $(REL_OBJ)
	@echo "  LD      $@"
	@$(CC) -o $@ $^ $(PKG_LIBS)

build/asan/aimaas: build/asan/src/main.o $(ASAN_OBJ)
	@echo "  LD      $@"
	@$(CC) $(SAN) -o $@ $^ $(PKG_LIBS)

# aimaas-sim shares the HTTP server and the base helpers with aimaas
build/aimaas-sim: $(SIM_REL_OBJ) $(REL_OBJ)
	@echo "  LD      $@"
	@$(CC) -o $@ $^ $(PKG_LIBS)

build/asan/aimaas-sim: $(SIM_ASAN_OBJ) $(ASAN_OBJ)
	@echo "  LD      $@"
	@$(CC) $(SAN) -o $@ $^ $(PKG_LIBS)

build/unit: $(UNIT_SRC) $(REL_OBJ)
	@echo "  LD      $@"
	@$(CC) $(BASE_CFLAGS) -O1 $(PKG_CFLAGS) -Isrc -o $@ $(UNIT_SRC) $(REL_OBJ) $(PKG_LIBS)

build/asan/unit: $(UNIT_SRC) $(ASAN_OBJ)
	@echo "  LD      $@"
	@$(CC) $(BASE_CFLAGS) -O1 $(SAN) $(PKG_CFLAGS) -Isrc -o $@ $(UNIT_SRC) $(ASAN_OBJ) $(PKG_LIBS)

# A stand-in libnvidia-ml.so.1 answering with the H100 readings of
# shared/fixtures, so the NVML path is tested where there is no GPU.
build/fake-nvml/libnvidia-ml.so.1: tests/fixtures/fake_nvml.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) -std=c11 -O1 -g -Wall -Wextra -Werror -shared -fPIC -o $@ $<

asan: build/asan/aimaas build/asan/aimaas-sim build/asan/unit

lint:
	@scripts/lint.sh

run: deps all
	./build/aimaas serve $(ARGS)

# A first run without a GPU: simulated GPUs, the simulator as vLLM and
# LLaMA-Factory, demo models and a dataset (scripts/demo.mjs; data in data-demo/).
demo: deps all
	node scripts/demo.mjs $(ARGS)

test: deps lint all asan build/unit build/fake-nvml/libnvidia-ml.so.1
	@scripts/test.sh

# Opt-in: the Kubernetes scenario against a real cluster (docs/kubernetes.md;
# tests/k8s/real-cluster.test.mjs lists what it needs). CI runs it against the fake.
test-k8s: deps build/aimaas build/aimaas-sim
	@test -n "$(KUBECONFIG)" || { echo "make test-k8s KUBECONFIG=/path/to/kubeconfig (see docs/kubernetes.md)"; exit 2; }
	KUBECONFIG=$(KUBECONFIG) AIMAAS_BIN=build/aimaas AIMAAS_SIM_BIN=build/aimaas-sim \
		node --test --test-reporter=spec tests/k8s/real-cluster.test.mjs

# Coverage-guided fuzzing of the parsers (clang's libFuzzer); not part of
# `make test`, run it after touching a parser.
FUZZ_SECONDS ?= 30
FUZZ_SRC := src/http/am_http_parse.c src/gpu/am_smi.c src/gpu/am_simgpu.c src/gpu/am_gpu.c src/base/am_buf.c \
	src/base/am_mem.c src/base/am_time.c
build/fuzz/parsers: tests/fuzz/fuzz_parsers.c $(FUZZ_SRC)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined -o $@ $^
# The gateway's body scanner against jansson: they must agree on every body.
build/fuzz/gw_body: tests/fuzz/fuzz_gw_body.c src/gateway/gw_json.c src/base/am_buf.c src/base/am_mem.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -o $@ $^ $(PKG_LIBS)
# The model readers: config.json, GGUF and safetensors headers, each its own
# binary (and the dataset reader: JSON, JSONL, CSV), seeded from tests/fixtures/models and generated headers
# (tests/fuzz/make-seeds.mjs). FUZZ_RUNS=10000000 runs a fixed count instead.
FUZZ_MODEL_SRC := src/model/am_inspect.c src/model/am_gguf.c src/model/am_safetensors.c src/base/am_buf.c src/base/am_mem.c src/base/am_json.c src/base/am_err.c \
	src/base/am_msg.c src/base/am_msg_zh.c
FUZZ_MODELS := build/fuzz/model_config build/fuzz/gguf build/fuzz/safetensors
FUZZ_LIMIT = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS))
build/fuzz/model_config: tests/fuzz/fuzz_model_config.c $(FUZZ_MODEL_SRC)
build/fuzz/gguf: tests/fuzz/fuzz_gguf.c $(FUZZ_MODEL_SRC)
build/fuzz/safetensors: tests/fuzz/fuzz_safetensors.c $(FUZZ_MODEL_SRC)
build/fuzz/dataset: tests/fuzz/fuzz_dataset.c src/finetune/am_dataset.c src/base/am_buf.c src/base/am_mem.c \
	src/base/am_msg.c src/base/am_msg_zh.c
$(FUZZ_MODELS) build/fuzz/dataset:
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS)
# The kubeconfig parser (YAML via libyaml into jansson, then context/cluster/user).
build/fuzz/kubeconfig: tests/fuzz/fuzz_kubeconfig.c src/kube/kube_config.c src/base/am_buf.c src/base/am_mem.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS)
# The hubs' file listings and the choice of files to download.
build/fuzz/hub_files: tests/fuzz/fuzz_hub_files.c src/hub/hub_files.c src/base/am_buf.c src/base/am_mem.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS)
# Stored English read back in Chinese against the message table.
build/fuzz/msg_translate: tests/fuzz/fuzz_msg_translate.c src/base/am_msg.c src/base/am_msg_tr.c src/base/am_msg_zh.c \
		src/base/am_buf.c src/base/am_mem.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS)
# The configuration file's `key = value` lines (aimaas.conf).
build/fuzz/conf: tests/fuzz/fuzz_conf.c src/base/am_conf.c src/base/am_buf.c src/base/am_mem.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined -o $@ $^
build/fuzz/seeds.stamp: tests/fuzz/make-seeds.mjs
	@node tests/fuzz/make-seeds.mjs build/fuzz
	@touch $@
fuzz: build/fuzz/parsers build/fuzz/gw_body $(FUZZ_MODELS) build/fuzz/dataset build/fuzz/kubeconfig build/fuzz/hub_files build/fuzz/msg_translate build/fuzz/conf build/fuzz/seeds.stamp
	@mkdir -p build/fuzz/corpus build/fuzz/corpus-gw_body
	build/fuzz/parsers $(FUZZ_LIMIT) -max_len=4096 build/fuzz/corpus
	build/fuzz/model_config $(FUZZ_LIMIT) -max_len=8192 build/fuzz/corpus-config
	build/fuzz/gguf $(FUZZ_LIMIT) -max_len=4096 build/fuzz/corpus-gguf
	build/fuzz/safetensors $(FUZZ_LIMIT) -max_len=4096 build/fuzz/corpus-safetensors
	build/fuzz/dataset $(FUZZ_LIMIT) -max_len=4096 build/fuzz/corpus-dataset
	@mkdir -p build/fuzz/corpus-kubeconfig
	build/fuzz/kubeconfig $(FUZZ_LIMIT) -max_len=8192 build/fuzz/corpus-kubeconfig tests/fuzz/corpus/kubeconfig
	@mkdir -p build/fuzz/corpus-hub_files
	build/fuzz/hub_files $(FUZZ_LIMIT) -max_len=4096 build/fuzz/corpus-hub_files tests/fuzz/corpus/hub_files
	build/fuzz/gw_body $(FUZZ_LIMIT) -max_len=4096 -dict=tests/fuzz/gw_body.dict \
		build/fuzz/corpus-gw_body tests/fuzz/corpus/gw_body
	@mkdir -p build/fuzz/corpus-msg_translate
	build/fuzz/msg_translate $(FUZZ_LIMIT) -max_len=1024 build/fuzz/corpus-msg_translate tests/fuzz/corpus/msg_translate
	@mkdir -p build/fuzz/corpus-conf
	build/fuzz/conf $(FUZZ_LIMIT) -max_len=8192 build/fuzz/corpus-conf tests/fuzz/corpus/conf

# `make install` (PREFIX=/usr/local, DESTDIR honoured): the binaries, the
# console (share/aimaas/ui, where aimaas looks beside its binary), the docs,
# the systemd unit and, unless already there, /etc/aimaas/aimaas.conf and
# aimaas.env (docs/operations.md). `make deb`: a Debian package of the same.
VERSION := $(shell sed -n 's/^\#define AM_VERSION "\(.*\)"/\1/p' src/am_server.h)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DOCDIR ?= $(PREFIX)/share/doc/aimaas
UIDIR ?= $(PREFIX)/share/aimaas/ui
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
install: all install-files

install-files:
	@echo "  INSTALL $(DESTDIR)$(PREFIX)"
	@install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/aimaas
	@install -m 0755 build/aimaas build/aimaas-sim $(DESTDIR)$(BINDIR)/
	@rm -rf $(DESTDIR)$(UIDIR) && install -d $(DESTDIR)$(UIDIR) && cp -R build/ui/. $(DESTDIR)$(UIDIR)/ && \
		chmod -R u=rwX,go=rX $(DESTDIR)$(UIDIR)
	@install -m 0644 README.md LICENSE docs/operations.md $(DESTDIR)$(DOCDIR)/
	@sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' deploy/systemd/aimaas.service.in >$(DESTDIR)$(UNITDIR)/aimaas.service
	@chmod 0644 $(DESTDIR)$(UNITDIR)/aimaas.service
	@[ -e $(DESTDIR)$(SYSCONFDIR)/aimaas/aimaas.conf ] || install -m 0644 deploy/etc/aimaas.conf $(DESTDIR)$(SYSCONFDIR)/aimaas/
	@[ -e $(DESTDIR)$(SYSCONFDIR)/aimaas/aimaas.env ] || install -m 0600 deploy/etc/aimaas.env $(DESTDIR)$(SYSCONFDIR)/aimaas/

# Debian 12 / Ubuntu 22.04: the unit in /lib/systemd/system; scripts/deb.sh
# writes DEBIAN/ (Depends from dpkg-shlibdeps) and runs dpkg-deb under fakeroot.
# deb-package: the same from what is built (DEB_OUT: where, default build).
DEB_OUT ?= build
deb: all deb-package

deb-package:
	@rm -rf $(DEB_OUT)/deb
	@$(MAKE) --no-print-directory install-files DESTDIR=$(DEB_OUT)/deb/root PREFIX=/usr UNITDIR=/lib/systemd/system
	@echo "  DEB     $(DEB_OUT)/aimaas_$(VERSION)_$$(dpkg --print-architecture).deb"
	@scripts/deb.sh $(DEB_OUT)/deb/root $(VERSION) $(DEB_OUT) >/dev/null

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
