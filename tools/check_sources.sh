#!/usr/bin/env bash
# check_sources.sh: the source rules that keep every kernel runnable on the SIMT emulator
# (SPEC.md, "Three ways to run a kernel"): kernel launches only in cuda/launch.cuh, inline PTX and
# `extern __shared__` only in cuda/ptx.cuh. Prints each violation with file:line; exits 1 if any.
cd "$(dirname "$0")/.." || exit 1
bad=0
report() {  # pattern, the one file allowed to hold it, what it is
    local hits
    hits=$(grep -nE "$1" cuda/*.cu cuda/*.cuh cuda/*.h host/*.cpp host/*/*.cpp tests/*.cpp 2>/dev/null |
           grep -v "^$2:" | grep -vE '^[^:]+:[0-9]+:\s*//')
    if [ -n "$hits" ]; then
        echo "check_sources: $3 outside $2:" >&2
        echo "$hits" >&2
        bad=1
    fi
}
report '<<<' cuda/launch.cuh 'a kernel launch (<<<...>>>): use LAUNCH_KERNEL'
report '\basm\b|__asm__' cuda/ptx.cuh 'inline PTX (asm): add a named function to cuda/ptx.cuh'
report 'extern\s+__shared__' cuda/ptx.cuh 'extern __shared__: use dynamic_smem()'
exit $bad
