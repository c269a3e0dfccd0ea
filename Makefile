# Thin wrapper over CMake + Ninja. `make demo` and `make test` are the entry points the README names.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PREFIX     ?= /usr/local
DESTDIR    ?=

.PHONY: all deps build asan fuzz demo test soak bench install clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@ninja -C $(BUILD)

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Asan >/dev/null
	@ninja -C $(ASAN_BUILD)

fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_C_COMPILER=clang -DCK_FUZZ=ON \
	    -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@ninja -C $(FUZZ_BUILD)

demo: build
	@bash scripts/demo.sh $(BUILD)

test:
	@bash tests/run.sh

# Long runs of the tests that sample a space `make test` only touches: 1000 kill -9 rounds of
# the keying server at its seeded crash points (CK_KSV_CRASH_SEED to draw other rounds), and
# 1000 rotations with the keytab-agent killed at seeded points (CK_SOAK_SEED), and 1000
# provisioning actions with cablekey-prov killed at its seeded crash points (CK_PROV_CRASH_SEED).
SOAK_ROUNDS ?= 1000
soak: build
	@CK_BUILD=$(abspath $(BUILD)) CK_KSV_CRASH_ROUNDS=$(SOAK_ROUNDS) bash tests/interop/t_ksv_crash.sh
	@cd tests && CK_KSV_STORE_KILLS=$(SOAK_ROUNDS) $(abspath $(BUILD))/test_ksv_store
	@CK_BUILD=$(abspath $(BUILD)) CK_SOAK_ROUNDS=$(SOAK_ROUNDS) bash tests/interop/t_keyagent_crash.sh
	@CK_BUILD=$(abspath $(BUILD)) CK_PROV_CRASH_ROUNDS=$(SOAK_ROUNDS) bash tests/interop/t_prov_crash.sh

bench: build
	@bash bench/run.sh $(BUILD)
	@bash bench/pkinit_run.sh $(BUILD)
	@bash bench/cms_run.sh $(BUILD)
	@$(BUILD)/lkh_bench 1000000 4 2000
	@$(BUILD)/ksv_table2 11 4
	@bash bench/fleet_bench.sh $(BUILD)      # issue 9: KDC fleet (k9storm)
	@bash bench/storm/storm_run.sh $(BUILD)  # issue 9: reset storm (k9storm)

# Installs cablekey-kdc, cablekey-admind, cablekey-cms (sbin), cablekey (bin), the docs and the systemd units under
# $(DESTDIR)$(PREFIX). Builds $(BUILD) first if it was never configured; an existing build
# directory keeps its build type.
install:
	@[ -f $(BUILD)/build.ninja ] || $(MAKE) --no-print-directory build BUILD=$(BUILD)
	@ninja -C $(BUILD) cablekey-kdc cablekey-admind cablekey-cms cablekey-cli >/dev/null
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
