#!/usr/bin/env bash
# tools/gpu_check.sh — the one script a GPU session runs for issue 6 (docs/GPU.md), on a machine
# with CUDA (nvcc, cuBLAS), cmake and a compiler, maybe without MPI, roe's libraries or a network:
#   1. configure + build (-DROE_WITH_MPI=OFF, sm_90 only unless ROE_CUDA_ARCH says; roe's library
#      dependencies from .gpu-deps/ when the system lacks them: tools/gpu_deps.sh fetches them on
#      a CPU machine, and the device call carries the folder);
#      if that build fails: an "ops-only" build of test_cuda_ops (nvcc + gcc, no dependencies);
#   2. the ctest tests labelled cuda (each CUDA op vs the CPU op; GPU vs CPU end to end);
#   3. compute-sanitizer (memcheck) on the end-to-end test, one model;
#   4. the benchmark (bench/cuda_decode.sh: OLMoE-1B-7B shape, random weights on the GPU).
# Everything is teed into $OUT/gpu_check.log; the benchmark summary is $OUT/summary.json and the
# raw outputs $OUT/details.tar.gz (the device tool brings back at most 8 files). Every step has
# its own time limit so the whole run stays under about 8 minutes.
# Usage (from the device tool): run(command="bash tools/gpu_check.sh", carry=[".gpu-deps"], timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
t0=$(date +%s)
step() { echo; echo "=== [$(($(date +%s) - t0)) s] $*"; }
JOBS=${JOBS:-16}
ARCH=${ROE_CUDA_ARCH:-90}
BUILD=${BUILD:-build-gpu}
DETAILS=/tmp/roe-gpu-details
rm -rf "$DETAILS"
mkdir -p "$DETAILS"
[ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH
NVCC=$(command -v nvcc || true)
CUDA_HOME=${CUDA_HOME:-$( [ -n "$NVCC" ] && dirname "$(dirname "$(readlink -f "$NVCC")")")}

step "machine"
nvidia-smi || echo "nvidia-smi failed"
"$NVCC" --version | tail -2
cmake --version | head -1
gcc --version | head -1
head -2 /etc/os-release
git log --oneline -1 2>/dev/null || true

step "dependencies"
cmake_extra=()
if [ "${ROE_GPU_CHECK_FORCE_DEPS:-0}" = 1 ] || ! command -v protoc-c >/dev/null ||
    ! pkg-config --exists libcjson libpcre2-8 libutf8proc libprotobuf-c libmicrohttpd 2>/dev/null; then
    if [ -d .gpu-deps ]; then
        D=/tmp/roe-deps
        rm -rf "$D"
        mkdir -p "$D"
        for f in .gpu-deps/*.deb; do dpkg -x "$f" "$D"; done
        L=$D/usr/lib/x86_64-linux-gnu
        # libmicrohttpd.pc names gnutls in Requires.private, which pkg-config insists on finding
        # even for a shared link: a stub .pc (the library itself is the system's, or extra/)
        mkdir -p "$D/usr/share/pkgconfig"
        printf 'Name: gnutls\nDescription: stub (tools/gpu_check.sh)\nVersion: 3.7.9\nLibs: -lgnutls\nCflags:\n' \
            >"$D/usr/share/pkgconfig/gnutls.pc"
        export PKG_CONFIG_LIBDIR=$L/pkgconfig:$D/usr/share/pkgconfig
        export PKG_CONFIG_SYSROOT_DIR=$D PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
        export CPATH=$D/usr/include${CPATH:+:$CPATH} LIBRARY_PATH=$L${LIBRARY_PATH:+:$LIBRARY_PATH}
        export PATH=$D/usr/bin:$PATH
        export LD_LIBRARY_PATH=$L${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        if ! ldconfig -p | grep -q 'libgnutls.so.30'; then
            mkdir -p "$D/extra"
            for f in .gpu-deps/extra/*.deb; do dpkg -x "$f" "$D/extra"; done
            export LD_LIBRARY_PATH=$D/extra/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
        fi
        pkgc=$(command -v pkg-config || command -v pkgconf || true)
        [ -n "$pkgc" ] && cmake_extra+=("-DPKG_CONFIG_EXECUTABLE=$pkgc")
        cmake_extra+=("-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$L:$D/extra/usr/lib/x86_64-linux-gnu")
        echo "using roe's dependencies from .gpu-deps (unpacked in $D)"
    else
        echo "roe's libraries are missing and .gpu-deps/ was not carried (tools/gpu_deps.sh): the full build will fail"
    fi
fi
# NCCL: the system's, or the one of the nvidia-nccl Python wheel
nccl_inc="" nccl_lib=""
for d in /usr/include /usr/local/include "$CUDA_HOME/include"; do [ -f "$d/nccl.h" ] && nccl_inc=$d && break; done
if [ -z "$nccl_inc" ] && command -v python3 >/dev/null; then
    nd=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__) if nvidia.nccl.__file__ else list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)
    if [ -n "$nd" ] && [ -f "$nd/include/nccl.h" ]; then
        nccl_inc=$nd/include
        nccl_lib=$(ls "$nd"/lib/libnccl.so* 2>/dev/null | head -1)
        export LD_LIBRARY_PATH=$nd/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    fi
fi
# cuBLAS is dlopen'ed (kernels/cuda/cuda_impl.h): the toolkit's directory is compiled in; the
# nvidia-cublas wheel's goes on the library path in case the toolkit lacks it
if command -v python3 >/dev/null; then
    cb=$(python3 -c 'import nvidia.cublas, os; print(list(nvidia.cublas.__path__)[0])' 2>/dev/null || true)
    [ -n "$cb" ] && [ -d "$cb/lib" ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$cb/lib
fi
[ -n "$nccl_inc" ] && cmake_extra+=("-DROE_NCCL_INCLUDE=$nccl_inc")
[ -n "$nccl_lib" ] && cmake_extra+=("-DROE_NCCL_LIBRARY=$nccl_lib")
echo "nccl: include '${nccl_inc:-none}' library '${nccl_lib:-system}'"

step "configure + build ($BUILD, sm_$ARCH, -j$JOBS)"
full=0
# ROE_GPU_CHECK_CMAKE_ARGS: more cmake arguments (a dry run on a CPU machine: -DROE_WITH_CUDA=OFF)
read -r -a user_cmake <<<"${ROE_GPU_CHECK_CMAKE_ARGS:-}"
if [ "${ROE_GPU_CHECK_OPS_ONLY:-0}" != 1 ] && timeout "${CONFIGURE_TIMEOUT:-120}" cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DROE_WITH_MPI=OFF -DROE_WITH_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_CUDA_COMPILER="$NVCC" "${cmake_extra[@]}" "${user_cmake[@]}" \
    >"$DETAILS/configure.txt" 2>&1 &&
    timeout "${BUILD_TIMEOUT:-240}" cmake --build "$BUILD" -j "$JOBS" >"$DETAILS/build.txt" 2>&1; then
    full=1
    grep -i "roe:" "$DETAILS/configure.txt"
    echo "full build: ok ($(grep -ci warning "$DETAILS/build.txt") warning lines)"
else
    echo "full build FAILED; the end of its output:"
    tail -25 "$DETAILS/configure.txt" "$DETAILS/build.txt" 2>/dev/null
fi

if [ $full = 1 ]; then
    step "ctest -L cuda"
    timeout 200 ctest --test-dir "$BUILD" -L cuda --output-on-failure -V >"$DETAILS/ctest_cuda.txt" 2>&1
    echo "ctest exit $?"
    grep -E "^\s*[0-9]+: (ok|FAIL|skipped|  )|normalised|Test +#|tests passed|Skipped|Passed|Failed" "$DETAILS/ctest_cuda.txt" | head -150

    step "compute-sanitizer memcheck on the e2e test (olmoe fixture)"
    if command -v compute-sanitizer >/dev/null; then
        ROE_CUDA_E2E_MODELS=tests/fixtures/olmoe/model \
            ROE_CUDA_WRAP="compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20" \
            timeout 180 bash tests/cuda/e2e_cuda.sh "$BUILD/roe" "$BUILD/tests/cmp_logits" >"$DETAILS/sanitizer.txt" 2>&1
        echo "sanitized e2e exit $?"
        cat "$DETAILS/sanitizer.txt" | head -60
    else
        echo "compute-sanitizer not found"
    fi

    step "benchmark (bench/cuda_decode.sh)"
    GEN=${GEN:-32} PROMPT=${PROMPT:-128} timeout 200 bash bench/cuda_decode.sh "$BUILD" "$DETAILS/bench" \
        >"$DETAILS/bench.txt" 2>&1
    echo "bench exit $?"
    cat "$DETAILS/bench.txt" | tail -40
    cp "$DETAILS/bench/summary.json" "$OUT/summary.json" 2>/dev/null || true
else
    step "ops-only build of test_cuda_ops (no roe dependencies)"
    O=/tmp/roe-ops
    rm -rf "$O"
    mkdir -p "$O"
    ok=1
    for f in kernels/cuda/*.cu; do
        echo "$f"
    done | xargs -P "$JOBS" -I{} sh -c "\"$NVCC\" -O3 -std=c++17 -arch=sm_$ARCH -lineinfo -I. -DROE_CUDA_LIB_DIR=\\\"$CUDA_HOME/lib64\\\" -c {} -o $O/\$(basename {} .cu).cu.o" \
        >"$DETAILS/ops_build.txt" 2>&1 || ok=0
    for f in tests/cuda/test_cuda_ops.c kernels/backend.c kernels/cpu/*.c \
        base/alloc.c base/status.c base/dtype.c base/env.c; do
        gcc -O2 -std=gnu11 -fopenmp -DROE_HAVE_CUDA=1 -I. -Itests -I"$CUDA_HOME/include" -c "$f" \
            -o "$O/$(echo "$f" | tr / _).o" >>"$DETAILS/ops_build.txt" 2>&1 || ok=0
    done
    g++ -o "$O/test_cuda_ops" "$O"/*.o -L"$CUDA_HOME/lib64" -lcudart_static -ldl -lrt -lpthread -fopenmp -lm \
        >>"$DETAILS/ops_build.txt" 2>&1 || ok=0
    if [ $ok = 1 ]; then
        timeout 120 "$O/test_cuda_ops"
        echo "test_cuda_ops exit $?"
        if command -v compute-sanitizer >/dev/null; then
            step "compute-sanitizer memcheck on test_cuda_ops (the e2e test needs the full build)"
            timeout 180 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 "$O/test_cuda_ops" 2>&1 | tail -30
        fi
    else
        echo "ops-only build FAILED:"
        tail -30 "$DETAILS/ops_build.txt"
    fi
fi

step "done"
tar -czf "$OUT/details.tar.gz" -C "$DETAILS" . 2>/dev/null
ls -la "$OUT"
