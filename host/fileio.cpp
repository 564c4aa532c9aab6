// fileio.cpp: whole-file reads and crash-safe writes. A write goes to "<path>.tmp", is flushed to
// disk with fsync, renamed over the target (atomic on POSIX), and the directory is fsynced so the
// rename itself survives a power loss.
#include "fileio.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "error.h"

namespace rusca {
namespace fs = std::filesystem;

namespace {

std::string sys_error(const std::string& path, const char* what) {
    return path + ": " + what + ": " + std::strerror(errno);
}

std::string parent_dir(const std::string& path) {
    std::string dir = fs::path(path).parent_path().string();
    return dir.empty() ? "." : dir;
}

}  // namespace

std::string read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    check(f != nullptr, sys_error(path, "cannot open"));
    std::string out;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    bool failed = std::ferror(f);
    std::fclose(f);
    check(!failed, sys_error(path, "read failed"));
    return out;
}

bool file_exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

void make_dirs(const std::string& path) {
    std::error_code ec;
    fs::create_directories(path, ec);
    check(!ec, path + ": cannot create directory: " + ec.message());
    check(fs::is_directory(path), path + ": exists but is not a directory");
}

void fsync_dir(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    check(fd >= 0, sys_error(dir, "cannot open directory"));
    // Some filesystems refuse fsync on directories (EINVAL); durability there is best effort.
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    errno = err;
    check(rc == 0 || err == EINVAL, sys_error(dir, "fsync failed"));
}

AtomicWriter::AtomicWriter(const std::string& path) : path_(path), tmp_(path + ".tmp") {
    f_ = std::fopen(tmp_.c_str(), "wb");
    check(f_ != nullptr, sys_error(tmp_, "cannot create"));
}

AtomicWriter::~AtomicWriter() {
    if (!f_) return;
    std::fclose(f_);
    std::remove(tmp_.c_str());
}

void AtomicWriter::write(const void* data, size_t n) {
    check(f_ != nullptr, path_ + ": write after commit");
    if (n == 0) return;
    errno = 0;
    const size_t done = std::fwrite(data, 1, n, f_);
    if (done == n) return;
    // A write cut short by a full disk or a file-size limit can leave errno 0 (the kernel wrote what
    // fit); writing the rest directly gives the reason (ENOSPC, EFBIG). The file is discarded anyway.
    if (errno == 0 && std::fflush(f_) == 0 &&
        ::write(fileno(f_), static_cast<const char*>(data) + done, n - done) >= 0)
        errno = EIO;
    throw Error(sys_error(tmp_, "write failed"));
}

void AtomicWriter::commit() {
    check(f_ != nullptr, path_ + ": committed twice");
    std::FILE* f = f_;
    f_ = nullptr;  // from here on the destructor must not touch the stream
    // The message is built before remove() can overwrite errno.
    auto fail = [&](const char* what) {
        std::string msg = sys_error(tmp_, what);
        std::remove(tmp_.c_str());
        throw Error(msg);
    };
    if (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0) {
        std::string msg = sys_error(tmp_, "flush to disk failed");
        std::fclose(f);
        std::remove(tmp_.c_str());
        throw Error(msg);
    }
    if (std::fclose(f) != 0) fail("close failed");
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail("rename failed");
    fsync_dir(parent_dir(path_));
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
    AtomicWriter w(path);
    w.write(bytes.data(), bytes.size());
    w.commit();
}

}  // namespace rusca
