// error.h: the one exception type rusca throws for bad input or bad state.
// Every message names what was wrong (file, line, tensor, flag) so the user can fix it;
// main() prints it as "rusca: error: ..." and exits with status 1.
#pragma once
#include <stdexcept>
#include <string>

namespace rusca {

struct Error : std::runtime_error {
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A failed CUDA call or kernel (cuda/device.cu check_cuda). Distinct so that no loop mistakes a
// device fault for bad data: training loops skip an update only for a non-finite loss or gradient
// norm, and let this stop the run with its message before anything is saved.
struct CudaError : Error {
    explicit CudaError(const std::string& what) : Error(what) {}
};

// check(cond, msg): throw Error(msg) when cond is false. msg is built only on failure
// when passed as a lambda; a plain string is fine where the check is cold.
inline void check(bool cond, const std::string& msg) {
    if (!cond) throw Error(msg);
}

}  // namespace rusca
