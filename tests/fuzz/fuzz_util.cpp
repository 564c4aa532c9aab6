// fuzz_util.cpp: what every fuzz target shares (fuzz_target.h): the error check, scratch files, the registry.
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "host/error.h"
#include "host/fileio.h"
#include "tests/fuzz/fuzz_target.h"

#ifndef RUSCA_SOURCE_DIR
#define RUSCA_SOURCE_DIR "."
#endif

namespace rusca::fuzz {

void expect_clean(const std::string& name, const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        const std::string msg = e.what();
        if (msg.find(name) == std::string::npos)
            throw FuzzFinding("error message does not name " + name + ": " + msg);
    }
}

std::string scratch_dir() {
    static const std::string dir = [] {
        char tmpl[] = "/tmp/rusca_fuzz_XXXXXX";
        const char* d = mkdtemp(tmpl);
        if (!d) throw std::runtime_error("fuzz: cannot make a scratch folder in /tmp");
        std::string path = d;
        static std::string to_remove = path;
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(to_remove, ec);
        });
        return path;
    }();
    return dir;
}

std::string scratch_file(const std::string& name, const uint8_t* data, size_t size) {
    const std::string path = scratch_dir() + "/" + name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("fuzz: cannot write " + path);
    const bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
    std::fclose(f);
    if (!ok) throw std::runtime_error("fuzz: cannot write " + path);
    return path;
}

std::string source_path(const std::string& rel) { return std::string(RUSCA_SOURCE_DIR) + "/" + rel; }

static std::vector<Target>& registry() {
    static std::vector<Target> list;
    return list;
}

int register_target(const char* name, TargetFn fn) {
    registry().push_back({name, fn});
    return 0;
}

const std::vector<Target>& targets() { return registry(); }

}  // namespace rusca::fuzz
