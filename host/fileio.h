// fileio.h: whole-file reads and crash-safe writes (temp file + fsync + rename).
#pragma once
#include <string>

namespace rusca {

std::string read_file(const std::string& path);  // throws Error naming the path
// Atomically replaces `path` with `bytes`: a reader sees the old file or the new one, never half.
void write_file_atomic(const std::string& path, const std::string& bytes);
bool file_exists(const std::string& path);
void make_dirs(const std::string& path);  // mkdir -p

}  // namespace rusca
