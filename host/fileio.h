// fileio.h: whole-file reads and crash-safe writes (temp file + fsync + rename).
#pragma once
#include <cstddef>
#include <cstdio>
#include <string>

namespace rusca {

std::string read_file(const std::string& path);  // throws Error naming the path
// Atomically replaces `path` with `bytes`: a reader sees the old file or the new one, never half.
void write_file_atomic(const std::string& path, const std::string& bytes);
bool file_exists(const std::string& path);
void make_dirs(const std::string& path);  // mkdir -p
// Makes renames and file creations inside `dir` durable (they live in the directory's inode).
void fsync_dir(const std::string& dir);

// Streams a large file to `path + ".tmp"`; commit() fsyncs it and renames it over `path`.
// Destroyed without commit() (an exception mid-write), it deletes the temp file, so a failed
// write never leaves a half-written file under either name.
class AtomicWriter {
public:
    explicit AtomicWriter(const std::string& path);
    ~AtomicWriter();
    AtomicWriter(const AtomicWriter&) = delete;
    AtomicWriter& operator=(const AtomicWriter&) = delete;

    void write(const void* data, size_t n);
    void commit();

private:
    std::string path_, tmp_;
    std::FILE* f_ = nullptr;
};

}  // namespace rusca
