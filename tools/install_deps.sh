#!/usr/bin/env bash
# install_deps.sh: install the Debian packages rusca builds against, if any are missing.
# Called by `make` and `make test`; a no-op when everything is present. Needs root (or sudo)
# only when something is actually missing.
set -euo pipefail
need=()
have_header() { [ -e "/usr/include/$1" ]; }
have_header sentencepiece_processor.h || need+=(libsentencepiece-dev)
command -v spm_train >/dev/null || need+=(sentencepiece)
have_header gtest/gtest.h || need+=(libgtest-dev)
have_header nlohmann/json.hpp || need+=(nlohmann-json3-dev)
have_header CLI/CLI.hpp || need+=(libcli11-dev)
have_header fmt/core.h || need+=(libfmt-dev)
have_header pcre2.h || need+=(libpcre2-dev)        # tokenizer.json pre-tokenizer regexes
have_header utf8proc.h || need+=(libutf8proc-dev)  # NFC normalization (Qwen tokenizers)
command -v curl-config >/dev/null || need+=(libcurl4-openssl-dev)  # the external judge's HTTP client (--judge-url): headers; libcurl.so.4 is loaded at run time
have_header boost/context/detail/fcontext.hpp || need+=(libboost-context-dev)  # the SIMT emulator's fibers
command -v g++ >/dev/null || need+=(g++)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v mpirun >/dev/null || need+=(openmpi-bin)                             # data parallel: launcher
[ -e /usr/lib/x86_64-linux-gnu/pkgconfig/ompi-c.pc ] || need+=(libopenmpi-dev)  # data parallel: MPI plugin
[ ${#need[@]} -eq 0 ] && exit 0
echo "install_deps: installing missing Debian packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install_deps: need root to apt-get install ${need[*]}" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
